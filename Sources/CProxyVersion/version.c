#include "CProxyVersion.h"

// Weak: a strong definition linked in by scripts/release replaces it. Being weak, the compiler cannot
// assume its contents here either, so the accessor reads whichever definition the linker chose.
__attribute__((weak)) const char ipvs_proxy_version_stamp_text[] = "";

const char *ipvs_proxy_version_stamp(void) {
    return ipvs_proxy_version_stamp_text;
}
