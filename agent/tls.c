/* tls.c: being written. */
