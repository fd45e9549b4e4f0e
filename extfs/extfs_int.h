/* extfs internals shared by its files. */
#ifndef OBD_EXTFS_INT_H
#define OBD_EXTFS_INT_H

#include "extfs.h"

#include <ext2fs/ext2fs.h>

/* A channel's name: this prefix, then the source's address (%p). */
#define EXTFS_CHANNEL_PREFIX "extfs-source:"

extern io_manager extfs_io_manager;

#endif
