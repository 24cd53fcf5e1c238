"""waystation-identity: the IdentityResolutionStation (offline name, address, phone and e-mail normalising).

Importing this package is light: the parsing libraries are imported when the station opens.
"""

__version__ = "0.1.0"
