// Package tcpproxy is a TCP proxy for tests that can go silent the way a
// NAT or a load balancer does when it loses its flow table: the connections
// open at that moment stay open but carry nothing more, with no FIN and no
// RST, while new connections work (Drop); or every connection, old and new,
// carries nothing until it thaws (Freeze, Thaw).
package tcpproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards each connection it accepts on 127.0.0.1 to its target.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  []*conn
	frozen bool
	closed bool
	// changed is closed and replaced whenever frozen, closed or a
	// connection's dropped changes.
	changed chan struct{}
}

// Conn describes one connection the proxy accepted.
type Conn struct {
	Accepted time.Time
	// Dropped says whether Drop found the connection open.
	Dropped bool
	// ClientClosed is when the client closed (or reset) its end; zero
	// while it keeps it open.
	ClientClosed time.Time
	// ALPN lists the protocols the client offered in its TLS ClientHello
	// ("h2", "http/1.1"); nil when it offered none, or when its first
	// bytes were no whole ClientHello.
	ALPN []string
}

type conn struct {
	client, server net.Conn
	accepted       time.Time
	dropped        bool // guarded by Proxy.mu
	alpn           atomic.Pointer[[]string]
	clientClosed   atomic.Pointer[time.Time]
}

// Start listens on a free port of 127.0.0.1 and forwards to target
// (host:port); the proxy and every connection are closed in t.Cleanup.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Drop makes every open connection silent for good: it stays open but
// forwards nothing more in either direction, not even the end of a stream.
// Connections accepted later work. It returns how many it dropped.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if !c.dropped {
			c.dropped = true
			n++
		}
	}
	p.signalLocked()
	return n
}

// Freeze makes every connection, open or accepted later, forward nothing
// until Thaw. New connections are still accepted (the client's connect
// succeeds) and held.
func (p *Proxy) Freeze() { p.setFrozen(true) }

// Thaw lets the connections that are not dropped forward again, starting
// with what they held.
func (p *Proxy) Thaw() { p.setFrozen(false) }

func (p *Proxy) setFrozen(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = on
	p.signalLocked()
}

func (p *Proxy) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Conns describes the connections accepted so far, in order.
func (p *Proxy) Conns() []Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Conn, len(p.conns))
	for i, c := range p.conns {
		out[i] = Conn{Accepted: c.accepted, Dropped: c.dropped}
		if at := c.clientClosed.Load(); at != nil {
			out[i].ClientClosed = *at
		}
		if alpn := c.alpn.Load(); alpn != nil {
			out[i].ALPN = *alpn
		}
	}
	return out
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines. It is safe to call twice.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.signalLocked()
	conns := p.conns
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &conn{client: client, server: server, accepted: time.Now()}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			return
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		var both sync.WaitGroup
		both.Go(func() { p.pump(c, c.server, c.client, true) })
		both.Go(func() { p.pump(c, c.client, c.server, false) })
		p.wg.Go(func() {
			both.Wait()
			_ = c.client.Close()
			_ = c.server.Close()
		})
	}
}

// pump copies src to dst, and the end of src (as a half close) too. While
// the proxy is frozen it holds what it read; once the connection is
// dropped it reads on and forwards nothing, as packets vanish into a
// flow table that lost the connection.
func (p *Proxy) pump(c *conn, dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	first := fromClient
	for {
		n, err := src.Read(buf)
		if fromClient && err != nil {
			now := time.Now()
			c.clientClosed.CompareAndSwap(nil, &now)
		}
		if first && n > 0 {
			first = false
			if alpn := clientHelloALPN(buf[:n]); alpn != nil {
				c.alpn.Store(&alpn)
			}
		}
		switch p.await(c) {
		case stateClosed:
			return
		case stateDropped:
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
			} else {
				_ = dst.Close()
			}
			return
		}
	}
}

type connState int

const (
	stateOpen connState = iota
	stateDropped
	stateClosed
)

// await waits while the proxy is frozen, and says what c may do.
func (p *Proxy) await(c *conn) connState {
	for {
		p.mu.Lock()
		closed, dropped, frozen := p.closed, c.dropped, p.frozen
		changed := p.changed
		p.mu.Unlock()
		switch {
		case closed:
			return stateClosed
		case dropped:
			return stateDropped
		case !frozen:
			return stateOpen
		}
		<-changed
	}
}

// clientHelloALPN reads the protocols offered in the ALPN extension of a
// TLS ClientHello at the start of b; nil when b holds none.
func clientHelloALPN(b []byte) []string {
	// Record header: type 22 (handshake), version, length.
	if len(b) < 5 || b[0] != 22 {
		return nil
	}
	b = b[5:]
	// Handshake header: type 1 (ClientHello), 3-byte length; then the
	// version and the random.
	if len(b) < 4+2+32 || b[0] != 1 {
		return nil
	}
	b = b[4+2+32:]
	skip := func(lenBytes int) bool {
		if len(b) < lenBytes {
			return false
		}
		n := 0
		for _, x := range b[:lenBytes] {
			n = n<<8 | int(x)
		}
		if len(b) < lenBytes+n {
			return false
		}
		b = b[lenBytes+n:]
		return true
	}
	// session id, cipher suites, compression methods
	if !skip(1) || !skip(2) || !skip(1) || len(b) < 2 {
		return nil
	}
	exts := b[2:min(len(b), 2+int(binary.BigEndian.Uint16(b)))]
	for len(exts) >= 4 {
		typ, n := binary.BigEndian.Uint16(exts), int(binary.BigEndian.Uint16(exts[2:]))
		if len(exts) < 4+n {
			return nil
		}
		data := exts[4 : 4+n]
		exts = exts[4+n:]
		if typ != 16 || len(data) < 2 { // 16: application_layer_protocol_negotiation
			continue
		}
		var protos []string
		for list := data[2:]; len(list) > 0; {
			l := int(list[0])
			if len(list) < 1+l {
				return nil
			}
			protos = append(protos, string(list[1:1+l]))
			list = list[1+l:]
		}
		return protos
	}
	return nil
}
