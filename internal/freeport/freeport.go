// Package freeport picks free TCP ports on 127.0.0.1 for the servers that
// tests and the demo start (kubetest's control plane, testbin's servers). It
// does not depend on package testing, so commands use it too.
package freeport

import (
	"errors"
	"fmt"
	"net"
)

// Pick returns n distinct ports that were free on 127.0.0.1 a moment ago.
// Another process can take one before the caller binds it: callers retry
// with new ports when a server fails with "address already in use".
func Pick(n int) ([]int, error) {
	// All n stay open until every one is picked, so that they differ.
	var ls []net.Listener
	closeAll := func() error {
		var errs []error
		for _, l := range ls {
			errs = append(errs, l.Close())
		}
		return errors.Join(errs...)
	}
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(fmt.Errorf("pick a free port: %w", err), closeAll())
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	if err := closeAll(); err != nil {
		return nil, fmt.Errorf("free the picked ports: %w", err)
	}
	return ports, nil
}
