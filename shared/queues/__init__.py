"""Work flows through Storage queues as versioned JSON envelopes (base64, like the Functions host)."""
