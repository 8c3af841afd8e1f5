/* The pod sandbox ("pause") process of kseal-testenv's node: holds the
 * pod's namespaces, reaps orphans, exits on SIGINT/SIGTERM. Built with
 * `gcc -Os -static` (no registry is reachable, so it is built locally). It
 * prints one line on start, so `kubectl logs` has something to show. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction s = {0};
  s.sa_handler = stop;
  sigaction(SIGINT, &s, NULL);
  sigaction(SIGTERM, &s, NULL);
  s.sa_handler = reap;
  s.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &s, NULL);
  printf("kseal-testenv pause: pid %d, waiting\n", (int)getpid());
  fflush(stdout);
  for (;;) pause();
  return 0;
}
