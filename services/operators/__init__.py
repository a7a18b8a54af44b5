"""Operator tools: the dead-letter index, replay and discard, pipeline stats, and their HTTP API.

The CLI (``breakwater dlq ...``, ``breakwater stats``) and the HTTP API call the same functions, so
they show the same data.
"""
