package smtpsink

import (
	"io"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// backend starts one session per SMTP connection.
type backend struct{ sink *Sink }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.sink.sessions.Add(1)
	sess := &session{sink: b.sink, conn: c}
	if b.sink.opts.Auth == nil {
		// A session without the AuthSession methods makes go-smtp
		// advertise no AUTH at all.
		return sess, nil
	}
	sess.mustAuth = true
	return &authSession{sess}, nil
}

// session is one SMTP connection's transaction state: the envelope of the
// message being received.
type session struct {
	sink     *Sink
	conn     *smtp.Conn
	mustAuth bool
	authed   bool
	from     string
	to       []string
}

var _ smtp.Session = (*session)(nil)

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.mustAuth && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

// Data reads the whole message before deciding, so a refused message is
// refused after its data like a relay's content check would. A message over
// MaxMessageBytes makes the reader fail with go-smtp's 552 error, which is
// returned as the reply.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if refusal := s.sink.refuseNext(); refusal != nil {
		return refusal
	}
	m, perr := parse(raw)
	m.From, m.To, m.Raw = s.from, s.to, raw
	// Asked now, not in NewSession: STARTTLS comes after the session
	// began.
	_, m.TLS = s.conn.TLSConnectionState()
	m = s.sink.keep(m)
	if perr != nil {
		// Kept anyway: the sink accepts every message, and a test that
		// looks at the bodies sees they are missing.
		s.sink.log.Warn("message kept but not fully parsed", "id", m.ID, "err", perr)
	}
	s.sink.log.Info("message captured", "id", m.ID, "bytes", len(raw), "recipients", len(m.To))
	return nil
}

// authSession is a session that offers AUTH PLAIN, checked by
// Options.Auth.
type authSession struct{ *session }

var _ smtp.AuthSession = authSession{}

func (a authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (a authSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || !a.sink.opts.Auth(username, password) {
			return smtp.ErrAuthFailed
		}
		a.authed = true
		return nil
	}), nil
}
