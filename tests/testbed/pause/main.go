// pause: the sandbox process of every pod in the test bed. It holds the pod's namespaces open,
// reaps orphaned children (it is PID 1 of the pod) and exits on SIGTERM/SIGINT.
// Built static (CGO_ENABLED=0) into a FROM-scratch image because no registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
