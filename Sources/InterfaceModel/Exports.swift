// IP addresses are part of this module's API (interface addresses), and so is the error of a refused change.
@_exported import InternetAddress
@_exported import KernelErrors
