"""The stream workers: ``webhooks.inbound`` → dedup → per-provider dispatch → retry tiers / DLQ, exactly once.

``worker`` wires the loops and runs them (``run_worker``); ``eos`` is the transactional
consume-process-produce loop (and says why it is not faust's); ``dedup`` / ``dedup_store``,
``dispatch`` (with ``routing``, ``shaping``, ``destinations``, ``policy``) and ``retry`` are its handlers.
"""
