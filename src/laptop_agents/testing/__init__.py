"""What the product ships for testing and drills, never imported by the
product itself: the fake Bitunix exchange (``fake_exchange``)."""
