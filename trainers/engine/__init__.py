"""The engine: the paper's networks, data, the train loop, benchmarks (torch + torchvision only,
so it runs on a bare GPU machine). Imported by worker processes, never by the job layer itself."""
