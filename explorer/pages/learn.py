"""Learn: the paper's unit diagrams, drawn from the registries that build the models, and its
argument (signal through depth, Π λ) measured on a freshly initialised network in seconds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import diagrams, polling
from explorer.components.reference_view import concept_link
from explorer.engine_api import shortcut_product, signal_propagation
from explorer.figures import product_figure, signal_figure
from explorer.guard import page_guard
from explorer.variants import DEFAULT_TEACHING, TEACHING_VARIANTS, teaching_config
from trainers.core import presets
from trainers.core.config import RunConfig
from trainers.core.registry import BLOCKS, ORDERINGS, SHORTCUTS, mean_gate

DEPTHS = (8, 20, 56, 110, 164, 302)  # basic units, 6n+2
SHORTCUT_BN_NOTE = (
    "BN on the shortcut path (shown as '→ BN' on its 1x1 convs): by default, as in the paper, after "
    "the gate conv, the 1x1 shortcut conv and the projection in the original orderings (Fig. 2's "
    "caption, first ResNet paper); none on the pre-activation projection (authors' code). Override "
    "with `shortcut_bn` / `--shortcut-bn`."
)


def _gate_product_note() -> str:
    """What the Π λ chart draws for the gates, in numbers from the registry that draws them."""
    train = (1 - mean_gate(-6.0, True)) ** 54
    at_zero = (1 - mean_gate(-6.0, False)) ** 54
    return (
        "The factor the shortcut-only path applies between unit l and the output. Identity: 1 "
        "at every depth. λ = 0.5 over ResNet-110's 54 units: 0.5^54 ≈ 5.6e-17. Dropout keeps "
        "1 − p on average. Gates: 1 − g with g at initialisation in **training mode**, as training "
        "starts: the gate conv's BN (batch statistics) makes W_g x a unit-variance z, so g starts at "
        "E[sigmoid(z + b_g)], not sigmoid(b_g) (the gate at W_g x = 0, what a net without the gate's "
        f"BN is drawn with). At b_g = −6 over ResNet-110: Π (1 − g) = {train:.2f} drawn, "
        f"{at_zero:.2f} with sigmoid(b_g)."
    )


GATE_PRODUCT_NOTE = _gate_product_note()


@st.cache_data(show_spinner=False, max_entries=64)
def measure(cfg_json: str, batch: int, seed: int) -> dict:
    with polling.app_threads():  # one thread while a run trains on the CPU beside the app
        return signal_propagation(RunConfig.from_json(cfg_json), batch=batch, seed=seed)


PER_ROW = 3  # diagrams per row: wide enough that none is shrunk, so all five share one scale


def unit_caption(spec) -> str:
    """'conv 3×3 → BN → ReLU → … → (+) → ReLU', read off the spec the diagram draws (so a
    bottleneck unit gets its 1×1-3×3-1×1 caption)."""

    def name(op) -> str:
        return f"{op.kernel}×{op.kernel} conv" if op.kind == "conv" else op.label()

    ops = [name(o) for o in (*spec.preact, *spec.residual)] + ["(+)"] + [name(o) for o in spec.after_add]
    return " → ".join(ops)


def orderings_tab() -> None:
    st.markdown(
        "Where BN and ReLU sit inside a unit (paper Fig. 4, Table 2). "
        "**Full pre-activation (e)** leaves the path from unit to unit a pure identity."
    )
    concept_link("pre-activation")
    block = st.segmented_control(
        "Unit type",
        list(BLOCKS),
        default="basic",
        key="learn_block",
        format_func=lambda b: BLOCKS[b].title,
        required=True,
    )
    dots = diagrams.ordering_diagrams(block)
    names = list(dots)
    for row in range(0, len(names), PER_ROW):
        cols = st.columns(PER_ROW)
        for col, name in zip(cols, names[row : row + PER_ROW]):
            with col:
                st.graphviz_chart(dots[name], width="content")
                cfg = diagrams.representative_config(ordering=name, block=block)
                st.caption(unit_caption(diagrams.typical_unit(cfg)))
    with st.expander("The first unit of a stage (it halves the map and widens the channels)"):
        order = st.selectbox(
            "Ordering",
            list(ORDERINGS),
            index=len(ORDERINGS) - 1,
            format_func=lambda o: ORDERINGS[o].title,
            key="learn_first_ordering",
        )
        cfg = diagrams.representative_config(ordering=order, block=block)
        st.graphviz_chart(diagrams.unit_dot(cfg, diagrams.typical_unit(cfg, first_of_stage=True)))
        st.caption(BLOCKS[block].note + ". " + SHORTCUT_BN_NOTE)
    with st.expander(
        "Table 5 (ImageNet, single-crop validation error): original vs pre-activation, the paper's reference rows, "
        "not trained here"
    ):
        st.dataframe(pd.DataFrame(presets.table5_rows()), hide_index=True)
        st.caption(presets.TABLE5_NOTE)


def shortcuts_tab() -> None:
    st.markdown(
        "What the shortcut does (paper Fig. 2, Table 1). Anything but the identity "
        "multiplies the signal of every unit, and those factors multiply over depth."
    )
    concept_link("identity shortcut")
    c1, c2, c3 = st.columns(3)
    lam = c1.slider("λ on the shortcut (constant scaling)", 0.0, 1.5, 0.5, 0.05, key="learn_lambda")
    mu = c2.slider("factor on F (constant scaling)", 0.0, 1.5, 1.0, 0.05, key="learn_mu")
    bg = c3.slider("initial gate bias b_g (gating)", -10.0, 0.0, -6.0, 1.0, key="learn_bg")
    dots = diagrams.shortcut_diagrams(shortcut_scale=lam, residual_scale=mu, gate_bias=bg)
    names = list(dots)
    for row in range(0, len(names), 3):
        cols = st.columns(3)
        for col, name in zip(cols, names[row : row + 3]):
            with col:
                st.graphviz_chart(dots[name], width="content")
                s = SHORTCUTS[name]
                st.caption(f"shortcut × {s.on_shortcut}, F × {s.on_residual}")
    st.caption(SHORTCUT_BN_NOTE)


def signal_tab() -> None:
    st.markdown(
        "**The paper's argument (Eq. 4-5).** With identity shortcuts and nothing after the addition, "
        "any deeper unit L is a shallower unit l plus a sum: **x_L = x_l + Σ F(x_i)** (Eq. 4). "
        "Differentiate it and the gradient at unit l is the gradient at the top times "
        "**(1 + ∂/∂x_l Σ F)** (Eq. 5). The **1** is the identity term: the top's gradient reaches "
        "every unit directly, so it cannot vanish, however deep the net. A scalar λ on every "
        "shortcut turns that 1 into **Π λ** over the units. Below: a freshly initialised network, "
        "fed Gaussian noise, measured unit by unit (training mode, random labels)."
    )
    c1, c2, c3 = st.columns([3, 1, 1])
    # bound to the URL: a teacher can link straight to a chosen comparison
    chosen = c1.multiselect(
        "Variants", list(TEACHING_VARIANTS), default=DEFAULT_TEACHING, key="variants", bind="query-params"
    )
    depth = c2.selectbox("Depth (basic units)", DEPTHS, index=DEPTHS.index(110), key="depth", bind="query-params")
    batch = c3.select_slider("Batch of noise images", [4, 8, 16, 32], value=16, key="batch", bind="query-params")
    if not chosen:
        st.info("Choose at least one variant.")
        return
    results, products = [], []
    bar = st.progress(0.0, text="measuring…")
    for i, name in enumerate(chosen):
        bar.progress(i / len(chosen), text=f"measuring {name} at ResNet-{depth} ({i + 1}/{len(chosen)})…")
        cfg = teaching_config(name, depth)
        r = measure(cfg.canonical_json(), batch, 0)
        results.append({**r, "label": name})
        products.append({**shortcut_product(cfg), "label": name})
    bar.empty()
    st.plotly_chart(signal_figure(results), key="learn_signal")
    st.markdown(
        "**Forward (left):** the size (RMS) of each unit's input. Along an identity path every unit "
        "adds its F to what it received (Eq. 4), so the signal grows gently with depth; a shortcut "
        "scaled by λ < 1 shrinks what it carries at every unit, so only the last few units' F "
        "survive and the curve stays flat.  \n"
        "**Backward (right):** the gradient at each unit's input divided by the gradient at the top. "
        "By Eq. 5 it is **1** (the identity term) plus what the F's add on the way down. With identity "
        "shortcuts it starts at 1 and grows gently toward the input as the F's add their share: full "
        "pre-activation (e) more than the original (a), whose ReLU after each addition cuts off part "
        "of what flows back. A higher curve here is not a worse net; at initialisation both keep "
        "the 1, and (e)'s gains show in training (Fig. 6). With λ = 0.5 the 1 becomes Π λ ≈ 0: "
        "whatever reaches the shallow units has crossed the weight layers, and at initialisation "
        "(BN inside F) that product swings by orders of magnitude, set by the F's rather than by "
        "the top's signal: the hard optimisation the paper reports (Table 1)."
    )
    st.caption(
        f"Measured on this machine in {sum(r['seconds'] for r in results):.1f} s "
        f"(batch {batch}, seed 0; cached). Log scales."
    )
    st.subheader("Π λ: the pure shortcut path")
    st.plotly_chart(product_figure(products), key="learn_product")
    st.caption(GATE_PRODUCT_NOTE)


st.title("Learn: why identity mappings")
with page_guard("learn"):
    tabs = st.tabs(["Orderings", "Shortcuts", "Signal through depth"], key="learn_tab", bind="query-params")
    # only the open tab does its work (the signal tab runs networks)
    for tab, body in zip(tabs, (orderings_tab, shortcuts_tab, signal_tab)):
        if tab.open is not False:
            with tab:
                body()
