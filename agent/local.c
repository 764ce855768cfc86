/* local.c: being written. */
