import ProxyCommands

await IPVSProxyCommand.runAsMain()
