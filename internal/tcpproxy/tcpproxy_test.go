package tcpproxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

func (c *client) send(t *testing.T, line string) {
	t.Helper()
	_, err := c.c.Write([]byte(line + "\n"))
	require.NoError(t, err)
}

// echo reads the next line, waiting at most wait (nothing arrives: "").
func (c *client) echo(t *testing.T, wait time.Duration) string {
	t.Helper()
	require.NoError(t, c.c.SetReadDeadline(time.Now().Add(wait)))
	line, err := c.r.ReadString('\n')
	if err != nil {
		var ne net.Error
		require.ErrorAs(t, err, &ne, "a silent connection is not closed")
		require.True(t, ne.Timeout())
		return ""
	}
	return strings.TrimSuffix(line, "\n")
}

// silence is how long a test listens before it calls a connection silent.
const silence = 300 * time.Millisecond

func TestDropSilencesTheOpenConnectionsOnly(t *testing.T) {
	p := Start(t, echoServer(t))
	old := dial(t, p)
	old.send(t, "one")
	require.Equal(t, "one", old.echo(t, time.Minute))

	assert.Equal(t, 1, p.Drop())
	old.send(t, "two")
	assert.Empty(t, old.echo(t, silence), "a dropped connection forwards nothing")

	fresh := dial(t, p)
	fresh.send(t, "three")
	assert.Equal(t, "three", fresh.echo(t, time.Minute), "a new connection works")

	require.NoError(t, old.c.Close())
	require.Eventually(t, func() bool { return !p.Conns()[0].ClientClosed.IsZero() }, time.Minute, time.Millisecond)
	conns := p.Conns()
	require.Len(t, conns, 2)
	assert.True(t, conns[0].Dropped)
	assert.False(t, conns[1].Dropped)
	assert.True(t, conns[1].ClientClosed.IsZero())
	p.Thaw()
	assert.Empty(t, fresh.echo(t, silence), "thawing does not revive a dropped connection, nor repeat anything")
}

func TestFreezeHoldsEveryConnectionUntilThaw(t *testing.T) {
	p := Start(t, echoServer(t))
	old := dial(t, p)
	old.send(t, "one")
	require.Equal(t, "one", old.echo(t, time.Minute))

	p.Freeze()
	old.send(t, "two")
	assert.Empty(t, old.echo(t, silence))
	fresh := dial(t, p) // the connect succeeds
	fresh.send(t, "three")
	assert.Empty(t, fresh.echo(t, silence))

	p.Thaw()
	assert.Equal(t, "two", old.echo(t, time.Minute), "what was held is forwarded")
	assert.Equal(t, "three", fresh.echo(t, time.Minute))
	assert.Len(t, p.Conns(), 2)
}

func TestALPN(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p := Start(t, strings.TrimPrefix(srv.URL, "https://"))
	for _, protos := range [][]string{{"h2", "http/1.1"}, {"http/1.1"}, nil} {
		c, err := tls.Dial("tcp", p.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: protos}) //nolint:gosec // a test server
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
	conns := p.Conns()
	require.Len(t, conns, 3)
	assert.Equal(t, []string{"h2", "http/1.1"}, conns[0].ALPN)
	assert.Equal(t, []string{"http/1.1"}, conns[1].ALPN)
	assert.Nil(t, conns[2].ALPN)
	assert.Nil(t, clientHelloALPN([]byte("GET / HTTP/1.1\r\n")))
}
