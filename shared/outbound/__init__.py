"""Pega → Exchange: contract requests become durable operations, a queue worker writes them to Graph.

- :mod:`shared.outbound.kinds` — the nine contract operations and what each one does;
- :mod:`shared.outbound.intake` — HTTP request → validated, recorded Operation → queue (202);
- :mod:`shared.outbound.payloads` — request bodies too large for a table entity go to a blob;
- :mod:`shared.outbound.graph_payloads` — Graph JSON bodies for events, messages and contacts;
- :mod:`shared.outbound.appointments`, :mod:`~.emails`, :mod:`~.contacts` — the executors;
- :mod:`shared.outbound.worker` — one queue message → one operation run, with its failure rules.
"""
