package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// securityConfig follows Redis's conventions: a password (requirepass),
// TLS on the listener, and protected mode.
type securityConfig struct {
	RequirePass   string // empty: no AUTH needed
	TLSCertFile   string
	TLSKeyFile    string
	TLSCACertFile string // set: clients must present a certificate it signs
	ProtectedMode string // yes or no
}

func defaultSecurityConfig() securityConfig { return securityConfig{ProtectedMode: "yes"} }

func securityFlags(fs *flag.FlagSet, c *securityConfig) {
	fs.StringVar(&c.RequirePass, "requirepass", c.RequirePass, "`password` clients must give with AUTH (or AUTH default password, or HELLO ... AUTH default password) before any other command; set it through CRUZD_REQUIREPASS to keep it out of process listings; with it, the admin server asks for it too (HTTP basic auth, any user name; /healthz excepted)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "certificate `file` (PEM): serve TLS on --listen-addr and --admin-addr (with --tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "private key `file` (PEM) of --tls-cert-file")
	fs.StringVar(&c.TLSCACertFile, "tls-ca-cert-file", c.TLSCACertFile, "CA certificates `file` (PEM): require clients to present a certificate signed by one of them")
	fs.StringVar(&c.ProtectedMode, "protected-mode", c.ProtectedMode, "yes: refuse to listen (RESP or admin) on an address that is not loopback unless --requirepass or client-certificate TLS (--tls-ca-cert-file) protects it; no: allow it")
}

func (c *securityConfig) tlsEnabled() bool  { return c.TLSCertFile != "" }
func (c *securityConfig) clientCerts() bool { return c.TLSCACertFile != "" }

// validate checks the flags and protected mode for the two addresses.
func (c *securityConfig) validate(listen, admin string) error {
	switch {
	case c.ProtectedMode != "yes" && c.ProtectedMode != "no":
		return fmt.Errorf("--protected-mode %q: want yes or no", c.ProtectedMode)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together")
	case c.TLSCACertFile != "" && !c.tlsEnabled():
		return errors.New("--tls-ca-cert-file needs --tls-cert-file and --tls-key-file")
	}
	if c.ProtectedMode == "no" || c.RequirePass != "" || c.clientCerts() {
		return nil
	}
	for _, a := range []struct{ flag, addr string }{{"--listen-addr", listen}, {"--admin-addr", admin}} {
		if a.addr != "" && !isLoopback(a.addr) {
			return fmt.Errorf("protected mode: %s %s is not a loopback address, and nothing protects it: "+
				"set a password with --requirepass (or CRUZD_REQUIREPASS), or require client certificates with "+
				"--tls-cert-file, --tls-key-file and --tls-ca-cert-file, or listen on 127.0.0.1; "+
				"--protected-mode no turns this check off (anyone who can reach the port can then read and write every key%s)",
				a.flag, a.addr, map[bool]string{true: ", and the admin address serves /debug/pprof", false: ""}[a.flag == "--admin-addr"])
		}
	}
	return nil
}

// isLoopback reports whether addr (host:port) can only be reached from this
// machine: a loopback IP, or a name that resolves only to loopback IPs. An
// empty host means every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// serverTLS is the listeners' TLS configuration, nil without TLS.
func (c *securityConfig) serverTLS() (*tls.Config, error) {
	if !c.tlsEnabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.clientCerts() {
		pem, err := os.ReadFile(c.TLSCACertFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-cert-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-cert-file %s: no PEM certificate in it", c.TLSCACertFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// listen listens on addr, with TLS when configured.
func (s *server) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg, err := s.cfg.Security.serverTLS()
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg == nil {
		return ln, nil
	}
	return tls.NewListener(noDelayListener{ln.(*net.TCPListener)}, cfg), nil
}

// noDelayListener sets TCP_NODELAY on accepted connections, which newConn
// cannot do through a TLS connection.
type noDelayListener struct{ *net.TCPListener }

func (l noDelayListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	c.SetNoDelay(true)
	c.SetKeepAlive(true)
	return c, nil
}

// passwordOK compares in constant time (of the hashes, so that the
// length of the password does not show either).
func (s *server) passwordOK(given []byte) bool {
	want := sha256.Sum256([]byte(s.cfg.Security.RequirePass))
	got := sha256.Sum256(given)
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

const (
	errNoAuthRequired = "NOAUTH Authentication required."
	errWrongPass      = "WRONGPASS invalid username-password pair or user is disabled."
)

// authorized reports whether the connection may run spec; if not, it
// replies NOAUTH.
func (c *conn) authorized(spec *cmdSpec) bool {
	if c.authed || c.s.cfg.Security.RequirePass == "" {
		return true
	}
	switch spec.name {
	case "auth", "quit", "hello":
		return true // HELLO checks its AUTH option itself
	}
	c.w.Err(errNoAuthRequired)
	return false
}

// authenticate checks AUTH's arguments (password, or user password; the
// only user is "default") and replies to a failure.
func (c *conn) authenticate(user, pass []byte) bool {
	if (user != nil && string(user) != "default") || !c.s.passwordOK(pass) {
		c.s.logger.Warn("AUTH failed", "conn", c.id, "remote", c.nc.RemoteAddr().String())
		c.w.Err(errWrongPass)
		return false
	}
	c.authed = true
	return true
}

// authCommand is AUTH [user] password.
func (c *conn) authCommand(args [][]byte) {
	if len(args) > 3 {
		c.w.Err(errSyntax)
		return
	}
	if c.s.cfg.Security.RequirePass == "" {
		c.w.Err(errNoAuth)
		return
	}
	var user []byte
	if len(args) == 3 {
		user = args[1]
	}
	if c.authenticate(user, args[len(args)-1]) {
		c.w.OK()
	}
}

// helloAuth handles HELLO's AUTH user pass option; false means a reply
// was written and HELLO stops.
func (c *conn) helloAuth(user, pass []byte) bool {
	if c.s.cfg.Security.RequirePass == "" {
		c.w.Err(errNoAuth)
		return false
	}
	return c.authenticate(user, pass)
}

// helloAllowed: HELLO without AUTH before authenticating is refused as
// Redis refuses it.
func (c *conn) helloAllowed(args [][]byte) bool {
	if c.authed || c.s.cfg.Security.RequirePass == "" {
		return true
	}
	for i := 2; i < len(args); i++ {
		if strings.EqualFold(string(args[i]), "auth") {
			return true
		}
	}
	c.w.Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	return false
}

// adminAuth asks for the password on the admin server when one is set
// (HTTP basic auth, any user name), except on /healthz.
func (s *server) adminAuth(h http.Handler) http.Handler {
	if s.cfg.Security.RequirePass == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			_, pass, ok := r.BasicAuth()
			if !ok || !s.passwordOK([]byte(pass)) {
				w.Header().Set("WWW-Authenticate", `Basic realm="cruzd"`)
				http.Error(w, "cruzd: the admin server needs the --requirepass password (HTTP basic auth)", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
