"""Serving a bank outside this process: a standard checkpoint export (and the OpenAI-compatible server)."""
