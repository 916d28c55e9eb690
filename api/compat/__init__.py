"""Drop-in servers for foreign face APIs (docs/integrations.md): one module per protocol, each a
translation into the core's request models and job kinds (api/submit.py), served by their own
app on their own port (api/compat/app.py)."""
