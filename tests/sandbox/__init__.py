"""The gateway emulator as a product: both protocols, faults and flavors over HTTP, the official SDKs against
it, and the pytest plugin users enable."""
