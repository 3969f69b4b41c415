"""An Exchange Web Services (EWS) simulator: the on-premises Exchange Server 2016/2019/SE that the
real exchangelib talks to unchanged (only the endpoint URL and credentials differ).

See docs/ews-simulator.md for what it covers and what it does not.
"""
