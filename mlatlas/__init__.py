"""mlatlas: an executable guide to machine learning.

Every topic of the guide is working code checked against a trusted reference, and every key
insight is a lab that measures it and states a falsifiable claim with the number it saw.
"""

__version__ = "0.1.0"
