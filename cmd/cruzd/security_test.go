package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRequirePass(t *testing.T) {
	s := testServer(t, func(c *config) { c.Security.RequirePass = "s3cret pass" })
	r := dialRaw(t, s)
	steps := []struct{ send, want string }{
		{"PING\r\n", "-NOAUTH Authentication required."},
		{"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "-NOAUTH Authentication required."},
		{"*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n", "-NOAUTH HELLO must be called"},
		{"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$11\r\ns3cret pass\r\n", "-WRONGPASS"},
		{"*2\r\n$4\r\nAUTH\r\n$10\r\ns3cret pas\r\n", "-WRONGPASS"}, // a prefix is wrong too
		{"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "-NOAUTH"},
		{"*2\r\n$4\r\nAUTH\r\n$11\r\ns3cret pass\r\n", "+OK"},
		{"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n", "+OK"},
		{"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "$1\r\n1"},
	}
	for _, st := range steps {
		r.send(st.send)
		if got := r.reply(); !strings.HasPrefix(got, st.want) {
			t.Fatalf("%q: got %q, want %q...", st.send, got, st.want)
		}
	}
	// AUTH default password, and HELLO with AUTH, on new connections.
	r2 := dialRaw(t, s)
	r2.send("*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$11\r\ns3cret pass\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
	if a, b := r2.reply(), r2.reply(); a != "+OK\r\n" || b != "$1\r\n1\r\n" {
		t.Fatalf("AUTH default: %q %q", a, b)
	}
	r3 := dialRaw(t, s)
	r3.send("*5\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$11\r\ns3cret pass\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
	if a, b := r3.reply(), r3.reply(); !strings.HasPrefix(a, "*14") || b != "$1\r\n1\r\n" {
		t.Fatalf("HELLO AUTH: %q %q", a, b)
	}

	// A real client: without the password it is refused, with it it works.
	ctx := ctxT(t)
	bad := redis.NewClient(&redis.Options{Addr: s.Addr().String(), Protocol: 2})
	defer bad.Close()
	if err := bad.Get(ctx, "a").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("go-redis without a password: %v", err)
	}
	good := redis.NewClient(&redis.Options{Addr: s.Addr().String(), Protocol: 2, Password: "s3cret pass"})
	defer good.Close()
	if v, err := good.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("go-redis with the password: %q, %v", v, err)
	}

	// The admin server asks for the password too, but for /healthz.
	admin := "http://" + s.AdminAddr().String()
	get := func(path, pass string) int {
		req, _ := http.NewRequest("GET", admin+path, nil)
		if pass != "" {
			req.SetBasicAuth("any", pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, pass string
		want       int
	}{{"/metrics", "", 401}, {"/debug/pprof/", "", 401}, {"/metrics", "wrong", 401}, {"/metrics", "s3cret pass", 200}, {"/debug/pprof/", "s3cret pass", 200}, {"/healthz", "", 200}} {
		if got := get(c.path, c.pass); got != c.want {
			t.Errorf("GET %s with password %q: %d, want %d", c.path, c.pass, got, c.want)
		}
	}
}

// TestNoPasswordAuth keeps Redis's answer to AUTH when no password is set.
func TestNoPasswordAuth(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	r.send("*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\nPING\r\n")
	if a, b := r.reply(), r.reply(); !strings.HasPrefix(a, "-ERR AUTH <password> called without any password configured") || b != "+PONG\r\n" {
		t.Fatalf("AUTH without requirepass: %q %q", a, b)
	}
}

func TestProtectedMode(t *testing.T) {
	for _, c := range []struct {
		name          string
		listen, admin string
		mod           func(*securityConfig)
		refused       string // "" : allowed
	}{
		{"loopback", "127.0.0.1:7379", "127.0.0.1:7380", nil, ""},
		{"localhost", "localhost:7379", "[::1]:7380", nil, ""},
		{"all interfaces", "0.0.0.0:7379", "127.0.0.1:7380", nil, "--listen-addr 0.0.0.0:7379"},
		{"empty host", ":7379", "", nil, "--listen-addr :7379"},
		{"admin exposed", "127.0.0.1:7379", "0.0.0.0:7380", nil, "/debug/pprof"},
		{"password", "0.0.0.0:7379", "0.0.0.0:7380", func(s *securityConfig) { s.RequirePass = "x" }, ""},
		{"client certs", "0.0.0.0:7379", "", func(s *securityConfig) {
			s.TLSCertFile, s.TLSKeyFile, s.TLSCACertFile = "c", "k", "ca"
		}, ""},
		{"TLS without client certs", "0.0.0.0:7379", "", func(s *securityConfig) { s.TLSCertFile, s.TLSKeyFile = "c", "k" }, "protected mode"},
		{"off", "0.0.0.0:7379", "0.0.0.0:7380", func(s *securityConfig) { s.ProtectedMode = "no" }, ""},
		{"bad mode", "127.0.0.1:7379", "", func(s *securityConfig) { s.ProtectedMode = "maybe" }, "--protected-mode"},
		{"cert without key", "127.0.0.1:7379", "", func(s *securityConfig) { s.TLSCertFile = "c" }, "--tls-key-file"},
	} {
		sc := defaultSecurityConfig()
		if c.mod != nil {
			c.mod(&sc)
		}
		err := sc.validate(c.listen, c.admin)
		switch {
		case c.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)):
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.refused)
		}
	}
	// The binary refuses to start, says why, and listens on nothing.
	bin := buildCruzd(t)
	out, err := exec.Command(bin, "serve", "--data-dir", t.TempDir(), "--listen-addr", "0.0.0.0:0").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "protected mode") || !strings.Contains(string(out), "--requirepass") {
		t.Fatalf("cruzd on 0.0.0.0 without protection: %v\n%s", err, out)
	}
}

// TestRequirePassFromEnv runs the binary with the password in
// CRUZD_REQUIREPASS, not on its command line.
func TestRequirePassFromEnv(t *testing.T) {
	bin := buildCruzd(t)
	t.Setenv("CRUZD_REQUIREPASS", "from-env")
	p := startProc(t, bin, t.TempDir(), "--no-sync")
	ctx := ctxT(t)
	c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without AUTH: %v", err)
	}
	c2 := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2, Password: "from-env"})
	defer c2.Close()
	if err := c2.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if cmdline, err := os.ReadFile("/proc/" + itoa(p.cmd.Process.Pid) + "/cmdline"); err == nil && strings.Contains(string(cmdline), "from-env") {
		t.Fatalf("the password shows in the process's command line")
	}
}

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (both signed by the CA), and another CA's client certificate.
type certFiles struct{ ca, serverCert, serverKey, clientCert, clientKey, strangerCert, strangerKey string }

func makeCerts(t *testing.T) certFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k, der
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		k := newKey()
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kd
	}
	ca, caKey, caDER := newCA("cruzd test CA")
	other, otherKey, _ := newCA("another CA")
	var f certFiles
	f.ca = write("ca.pem", "CERTIFICATE", caDER)
	d, k := leaf(ca, caKey, "cruzd", x509.ExtKeyUsageServerAuth)
	f.serverCert, f.serverKey = write("server.pem", "CERTIFICATE", d), write("server-key.pem", "EC PRIVATE KEY", k)
	d, k = leaf(ca, caKey, "client", x509.ExtKeyUsageClientAuth)
	f.clientCert, f.clientKey = write("client.pem", "CERTIFICATE", d), write("client-key.pem", "EC PRIVATE KEY", k)
	d, k = leaf(other, otherKey, "stranger", x509.ExtKeyUsageClientAuth)
	f.strangerCert, f.strangerKey = write("stranger.pem", "CERTIFICATE", d), write("stranger-key.pem", "EC PRIVATE KEY", k)
	return f
}

func TestTLSClientCertificates(t *testing.T) {
	f := makeCerts(t)
	s := testServer(t, func(c *config) {
		c.Security.TLSCertFile, c.Security.TLSKeyFile, c.Security.TLSCACertFile = f.serverCert, f.serverKey, f.ca
	})
	addr := s.Addr().String()
	ctx := ctxT(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f.ca)
	pool.AppendCertsFromPEM(caPEM)
	tlsFor := func(cert, key string) *tls.Config {
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		return cfg
	}
	good := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, TLSConfig: tlsFor(f.clientCert, f.clientKey)})
	defer good.Close()
	if err := good.Set(ctx, "tls", "yes", 0).Err(); err != nil {
		t.Fatalf("go-redis with a client certificate: %v", err)
	}
	for _, c := range []struct {
		name string
		cfg  *tls.Config
	}{{"no client certificate", tlsFor("", "")}, {"another CA's certificate", tlsFor(f.strangerCert, f.strangerKey)}} {
		bad := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, TLSConfig: c.cfg, MaxRetries: -1})
		if err := bad.Get(ctx, "tls").Err(); err == nil {
			t.Errorf("go-redis with %s was served", c.name)
		}
		bad.Close()
	}
	plain := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	if err := plain.Get(ctx, "tls").Err(); err == nil {
		t.Error("a plain-text client was served")
	}
	plain.Close()

	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed (.ci/run installs it)")
	}
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(cli, "--tls", "--cacert", f.ca, "--cert", f.clientCert, "--key", f.clientKey, "-h", "127.0.0.1", "-p", port, "GET", "tls").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Fatalf("redis-cli --tls: %v\n%s", err, out)
	}
}
