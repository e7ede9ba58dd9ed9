// The IPVS message builders and parsers that the handle (ipvs.c) uses besides the public ones in CNetlink.h.
// Pure: they read and write only their arguments (ipvs_messages.c).
#ifndef CNETLINK_IPVS_MESSAGES_H
#define CNETLINK_IPVS_MESSAGES_H

#include <linux/netlink.h>
#include <netlink/msg.h>
#include <stdint.h>

#include "CNetlink.h"

/// Writes the generic netlink header of an IPVS request into `message` (which must be empty).
int ipvs_begin_message(struct nl_msg *message, uint16_t family_id, uint32_t sequence, int flags, uint8_t command);
/// Adds a service's key (and with `full`, its settings) as the request's service attribute.
int ipvs_put_service(struct nl_msg *message, const cnetlink_service *service, int full);
/// Builds `operation` into `message` (which must be empty).
int ipvs_build_operation(struct nl_msg *message, const cnetlink_operation *operation, uint16_t family_id,
                         uint32_t sequence, int flags);
/// Adds the nonzero timeouts to a SET_CONFIG request (a timeout left out stays as it is).
int ipvs_put_timeouts(struct nl_msg *message, const cnetlink_timeouts *timeouts);

/// Reads a GET_INFO reply; `-CNETLINK_EBADREPLY` when it lacks the version or the table size.
int ipvs_parse_info(const struct nlmsghdr *message, uint32_t *version, uint32_t *connection_table_size);
/// Reads a GET_CONFIG reply; a timeout the kernel left out reads 0.
int ipvs_parse_timeouts(const struct nlmsghdr *message, cnetlink_timeouts *timeouts);

#endif
