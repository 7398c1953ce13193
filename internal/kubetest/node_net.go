package kubetest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Each node gets a /24 of podNetworkBase for its Pods, on a bridge of its
// own whose first address (the gateway) is also the node's address. The
// Pods get no default route: they reach the gateway, and through it the API
// server and the tests' listeners, and nothing beyond this machine.
var podNetworkBase = [2]byte{10, 244}

// nodeNet is a node's pod network.
type nodeNet struct {
	bridge  string
	subnet  *net.IPNet
	gateway net.IP
}

// allocateNet picks a /24 that no interface of the machine uses, creates
// the bridge with the gateway address on it and brings it up. Call with the
// registry lock, so two nodes never pick the same one.
func allocateNet(id string) (nodeNet, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nodeNet{}, fmt.Errorf("list addresses: %w", err)
	}
	used := func(n *net.IPNet) bool {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (n.Contains(ipn.IP) || ipn.Contains(n.IP)) {
				return true
			}
		}
		return false
	}
	for _, third := range rand.Perm(256) {
		subnet := &net.IPNet{IP: net.IPv4(podNetworkBase[0], podNetworkBase[1], byte(third), 0).To4(), Mask: net.CIDRMask(24, 32)}
		if used(subnet) {
			continue
		}
		n := nodeNet{
			bridge:  "kt-" + id,
			subnet:  subnet,
			gateway: net.IPv4(podNetworkBase[0], podNetworkBase[1], byte(third), 1).To4(),
		}
		if err := n.create(); err != nil {
			_ = deleteLink(n.bridge)
			return nodeNet{}, err
		}
		return n, nil
	}
	return nodeNet{}, fmt.Errorf("no free /24 in %d.%d.0.0/16", podNetworkBase[0], podNetworkBase[1])
}

func (n nodeNet) gatewayCIDR() string {
	ones, _ := n.subnet.Mask.Size()
	return n.gateway.String() + "/" + strconv.Itoa(ones)
}

// create makes the bridge. The CNI bridge plugin finds it by name and
// attaches the Pods' veths; the kubelet needs the node address to exist
// before it starts.
func (n nodeNet) create() error {
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", n.gatewayCIDR(), "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// tcpProxy forwards connections from a listener to a fixed address: the
// API server listens on 127.0.0.1, which Pods cannot reach, so the node
// forwards its gateway address to it, as kube-proxy would forward the
// kubernetes Service's address in a cluster.
type tcpProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startTCPProxy(listen, target string) (*tcpProxy, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listen, err)
	}
	p := &tcpProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *tcpProxy) Addr() *net.TCPAddr { return p.l.Addr().(*net.TCPAddr) }

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close() // refused while closing: nothing to report
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close() // the forwarded stream ended; a failed close loses nothing
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		_ = up.Close() // refused while closing: nothing to report
		p.untrack(c)
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Go(func() { pipe(up, c) })
	wg.Go(func() { pipe(c, up) })
	wg.Wait()
	p.untrack(c, up)
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *tcpProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close() // cut every forwarded stream; the listener's error is what Close reports
	}
	p.mu.Unlock()
	err := p.l.Close()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
