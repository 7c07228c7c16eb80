@_exported import NATSServerProcess
