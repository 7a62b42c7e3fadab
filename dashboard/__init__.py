"""dashboard: the Streamlit app (app.py, views/), its charts and the read-API client. It speaks to callscope only
over HTTP, through api_client.py."""
