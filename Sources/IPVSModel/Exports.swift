// IP addresses are part of this module's API (virtual server keys, real servers), and so is why a kernel call failed
// (`IPVSError.Reason`).
@_exported import InternetAddress
@_exported import KernelErrors
