"""The Textual dashboard (``app.run_app``) and its screens and widgets."""
