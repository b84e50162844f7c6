"""ResNet v2 Ablation Explorer: `streamlit run app.py`. A router only: the pages live in explorer/."""

import streamlit as st

from explorer import runs_api
from explorer.components.sidebar import jobs_badge

# an emoji favicon is drawn by the browser; a ":material/...:" one is fetched from a font CDN
st.set_page_config(page_title="ResNet v2 Ablation Explorer", page_icon="🧱", layout="wide")

pages = {
    "Experiments": [
        st.Page("explorer/pages/design.py", title="Design & launch", icon=":material/tune:", default=True),
        st.Page("explorer/pages/live.py", title="Live", icon=":material/monitoring:"),
        st.Page("explorer/pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
    "Understand": [
        st.Page("explorer/pages/learn.py", title="Learn", icon=":material/school:"),
        st.Page("explorer/pages/system.py", title="Data & system", icon=":material/storage:"),
    ],
}
page = st.navigation(pages)
runs_api.wake_supervisor()
with st.sidebar:
    jobs_badge()
page.run()
