"""gdpp-bench: does a diversity loss such as GDPP make a GAN cover more modes, and at what cost?"""

__version__ = "0.1.0"
