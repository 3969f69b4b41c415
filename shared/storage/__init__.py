"""State of the sync on Azure Table storage: mailboxes, id links, delta cursors, subscriptions,
outbound operations, per-mailbox health and dead letters. One repository module per kind."""
