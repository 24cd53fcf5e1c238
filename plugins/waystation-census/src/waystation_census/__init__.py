"""waystation-census: IncomeStation and DemographicsStation (ACS 5-year figures by ZIP code).

Importing this package is light: the offline data (pandas/pyarrow) and httpx are imported when a
station opens.
"""

__version__ = "0.1.0"
