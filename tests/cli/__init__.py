"""The command as a user runs it: settings and config files, app loading, hooks,
logging; against gunicorn where it is installed."""
