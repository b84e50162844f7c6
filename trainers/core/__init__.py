"""The torch-free core: what a run is (config, key), the variants as data, the paper's numbers,
and the rules every layer shares. Nothing here imports torch, diskcache or streamlit."""
