// IP addresses are part of this module's API (virtual server keys, real servers, interface addresses).
@_exported import InternetAddress
