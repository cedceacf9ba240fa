"""followup: a marketing automation and retargeting engine.

The core decides; storage, schedulers and channels carry the decisions out. The core never imports
an integration.
"""

__version__ = "0.1.0"
