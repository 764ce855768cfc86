/* handshake.c: being written. */
