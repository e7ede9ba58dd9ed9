// CProxyVersion: the version that scripts/release stamps into a release binary at link time.
//
// A plain `swift build` links only the weak, empty definition in version.c, and ipvs-proxy reports its
// base version (`ProxyVersion.base`). scripts/release compiles an object file with a strong definition of
// `ipvs_proxy_version_stamp_text` (its version from git) and hands it to the linker (`-Xlinker FILE.o`),
// which then takes that one: only the link step changes, nothing is recompiled and no tracked file is
// touched.
#ifndef CPROXYVERSION_H
#define CPROXYVERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/// The stamped version ("0.1.0-57-g2761e72", "0.1.0-57-g2761e72-dirty"), or "" in an unstamped build.
const char *ipvs_proxy_version_stamp(void);

#ifdef __cplusplus
}
#endif

#endif
