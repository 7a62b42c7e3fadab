"""Access (admins): the users of the projects you administer with their roles, and the audit log of changes
(who, when, what, before and after), exportable as CSV. The API decides what an admin may see
(GET /api/v1/access/users, GET /api/v1/audit); this page only shows it, and never caches it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import streamlit as st

from dashboard import auth, data

st.title("Access")
if "admin" not in auth.roles().values():
    auth.not_allowed_page("The Access page is for admins: it needs the admin role on a project.")
    st.stop()

client = data.client()
st.subheader("Users")
people = client.users()["users"]
st.dataframe(
    [
        {
            "name": u["name"],
            "signs in with": "password" if u["password"] else "identity provider",
            "roles": ", ".join(f"{role} on {'every project' if p == '*' else p}" for p, role in u["grants"].items()),
        }
        for u in people
    ],
    hide_index=True,
    key="access_users",
)
st.caption("Add users with `callscope users add` (server stopped) or POST /api/v1/access/users.")

st.subheader("Audit log")
entries = client.audit(500)["entries"]
if not entries:
    st.info("No changes recorded yet.")
else:
    st.dataframe(
        [
            {
                "when (UTC)": e["changed_at"],
                "who": e["actor"],
                "action": e["action"],
                "what": f"{e['object_kind']} {e['object_id']}",
                "project": e["project"] or "(every project)",
                "before": json.dumps(e["before"], sort_keys=True) if e["before"] is not None else "",
                "after": json.dumps(e["after"], sort_keys=True) if e["after"] is not None else "",
            }
            for e in entries
        ],
        hide_index=True,
        key="audit_log",
    )
stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
st.download_button(
    "Export the audit log (CSV)",
    data=client.audit_export("csv"),
    file_name=f"callscope-audit-{stamp}.csv",
    mime="text/csv",
    key="audit_export",
)
