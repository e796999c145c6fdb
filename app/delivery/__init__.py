"""From a planned notification to a message handed over: the deliverer (``deliverer``), what may
be sent when (``policy``), opt-outs and daily caps (``preferences``), per-channel rate limits
(``rate_limit``), unsubscribe links (``unsubscribe``) and the gateways (``gateways/``).

Keys: ``optout:{address key}``, ``cap:{recipient}:{day}`` (preferences), ``rate:{channel}``
(rate limits). Statuses and claims are ``app.state``'s."""
