"""Exchange Server on-premises over EWS (exchangelib): the second mailbox backend.

`gateway` runs exchangelib (synchronous) in a bounded thread pool with timeouts and maps its errors
to the engine's typed ones (`errors`); `reader` reads changes with SyncFolderItems into the same
records (shared/sync/records.py) the Graph reader produces; `parse` does that conversion.
"""
