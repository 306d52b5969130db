package user_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
)

// t0 and given come from domaintest: histories start at t0, a minute apart.
var (
	t0    = domaintest.T0
	given = domaintest.Given
)

// outcome, ok and invalid come from domaintest.
type outcome = domaintest.Outcome

var (
	ok      = domaintest.OK
	invalid = domaintest.Invalid
)

var (
	noop     = outcome{}
	notFound = outcome{Code: domain.CodeNotFound, Reason: "user_not_found"}
	lastOne  = outcome{Code: domain.CodeConflict, Reason: "last_admin"}
)

var (
	ada      = user.Registered{UserID: "u1", Email: "ada@example.com", FullName: "Ada Lovelace", Roles: []string{"customer"}}
	adaCreds = user.CredentialsSet{UserID: "u1", PasswordHash: "hash-1"}
	fenced   = user.RegistrationAbandoned{UserID: "u1"}
	grant    = func(role string) user.RoleGranted { return user.RoleGranted{UserID: "u1", Role: role} }
	revoke   = func(role string) user.RoleRevoked { return user.RoleRevoked{UserID: "u1", Role: role} }
)

func TestNormaliseEmail(t *testing.T) {
	// A 254-character address: 64 + 1 + 189.
	longDomain := strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
	atMax := strings.Repeat("a", 64) + "@" + longDomain
	if len(atMax) != user.MaxEmailLength {
		t.Fatalf("test address is %d long", len(atMax))
	}
	tests := []struct {
		in      string
		want    string
		wantMsg string // "" means valid
	}{
		{in: "ada@example.com", want: "ada@example.com"},
		{in: "Ada@Example.COM", want: "ada@example.com"},
		{in: "  ada@example.com \t\n", want: "ada@example.com"},
		{in: " ADA.Lovelace+Shop@Sub.Example.co.UK ", want: "ada.lovelace+shop@sub.example.co.uk"},
		{in: "a@b.io", want: "a@b.io"},
		{in: atMax, want: atMax},
		{in: strings.ToUpper(atMax), want: atMax},

		{in: "", wantMsg: "is required"},
		{in: "   ", wantMsg: "is required"},
		{in: "a" + atMax, wantMsg: "must be at most 254 characters"},
		{in: "ada", wantMsg: "is not a valid email address"},
		{in: "ada@", wantMsg: "is not a valid email address"},
		{in: "@example.com", wantMsg: "is not a valid email address"},
		{in: "ada@example", wantMsg: "is not a valid email address"},
		{in: "ada@localhost", wantMsg: "is not a valid email address"},
		{in: "ada@example.", wantMsg: "is not a valid email address"},
		{in: "ada@example.com.", wantMsg: "is not a valid email address"},
		{in: "ada@.example.com", wantMsg: "is not a valid email address"},
		{in: "ada@example..com", wantMsg: "is not a valid email address"},
		{in: "ada@@example.com", wantMsg: "is not a valid email address"},
		{in: "ada@b@example.com", wantMsg: "is not a valid email address"},
		{in: "ada lovelace@example.com", wantMsg: "is not a valid email address"},
		{in: `"ada lovelace"@example.com`, wantMsg: "is not a valid email address"},
		{in: "Ada Lovelace <ada@example.com>", wantMsg: "is not a valid email address"},
		{in: `"Ada" <ada@example.com>`, wantMsg: "is not a valid email address"},
		{in: "<ada@example.com>", wantMsg: "is not a valid email address"},
		{in: "ada@example.com (Ada)", wantMsg: "is not a valid email address"},
		{in: "ada@example.com, bob@example.com", wantMsg: "is not a valid email address"},
		{in: "ada@example.com\nbcc: eve@example.com", wantMsg: "is not a valid email address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := user.NormaliseEmail(tt.in)
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("NormaliseEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || len(de.Fields) != 1 ||
				de.Fields[0].Field != "email" || de.Fields[0].Message != tt.wantMsg {
				t.Fatalf("NormaliseEmail(%q) = %q, %v; want email: %s", tt.in, got, err, tt.wantMsg)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name    string
		pw      string
		wantMsg string // "" means valid
	}{
		{"8 characters", "12345678", ""},
		{"8 with inner and outer spaces", " pa ss  ", ""},
		{"8 multi-byte runes", strings.Repeat("é", 8), ""},
		{"128 characters", strings.Repeat("p", 128), ""},
		{"128 multi-byte runes", strings.Repeat("é", 128), ""},
		{"empty", "", "must be at least 8 characters"},
		{"7 characters", "1234567", "must be at least 8 characters"},
		{"7 runes in 14 bytes", strings.Repeat("é", 7), "must be at least 8 characters"},
		{"129 characters", strings.Repeat("p", 129), "must be at most 128 characters"},
		{"8 spaces", "        ", "must not be only white space"},
		{"white space of every kind", " \t\n\r\v\f  ", "must not be only white space"},
		{"invalid UTF-8", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := user.CheckPassword(tt.pw)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckPassword(%q) = %v, want valid", tt.pw, err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || len(de.Fields) != 1 ||
				de.Fields[0].Field != "password" || de.Fields[0].Message != tt.wantMsg {
				t.Fatalf("CheckPassword(%q) = %v, want password: %s", tt.pw, err, tt.wantMsg)
			}
		})
	}
}

func TestDecideRegister(t *testing.T) {
	valid := user.Register{UserID: "u1", Email: "ada@example.com", FullName: "Ada Lovelace", PasswordHash: "hash-1"}
	tests := []struct {
		name  string
		given []domain.Event
		cmd   func(*user.Register)
		then  outcome
	}{
		{"registers a customer with credentials", nil, func(*user.Register) {}, ok(ada, adaCreds)},
		{"full name trimmed", nil, func(c *user.Register) { c.FullName = "  Ada Lovelace  " }, ok(ada, adaCreds)},
		{"full name at max length", nil, func(c *user.Register) { c.FullName = strings.Repeat("é", user.MaxNameLength) },
			ok(user.Registered{UserID: "u1", Email: "ada@example.com", FullName: strings.Repeat("é", user.MaxNameLength), Roles: []string{"customer"}}, adaCreds)},

		{"stream taken", []domain.Event{ada, adaCreds}, func(*user.Register) {}, outcome{Code: domain.CodeConflict, Reason: "user_exists"}},
		{"stream fenced", []domain.Event{fenced}, func(*user.Register) {}, outcome{Code: domain.CodeConflict, Reason: "user_exists"}},
		{"stream taken, command invalid too", []domain.Event{ada}, func(c *user.Register) { c.Email = "" },
			outcome{Code: domain.CodeConflict, Reason: "user_exists"}},

		{"no user id", nil, func(c *user.Register) { c.UserID = "" }, invalid("user_id")},
		{"bad email", nil, func(c *user.Register) { c.Email = "ada" }, invalid("email")},
		{"no email", nil, func(c *user.Register) { c.Email = "" }, invalid("email")},
		{"email with a display name", nil, func(c *user.Register) { c.Email = "Ada <ada@example.com>" }, invalid("email")},
		{"no full name", nil, func(c *user.Register) { c.FullName = "" }, invalid("full_name")},
		{"blank full name", nil, func(c *user.Register) { c.FullName = "   " }, invalid("full_name")},
		{"full name too long", nil, func(c *user.Register) { c.FullName = strings.Repeat("n", user.MaxNameLength+1) }, invalid("full_name")},
		{"full name with a control character", nil, func(c *user.Register) { c.FullName = "Ada\x1bLovelace" }, invalid("full_name")},
		{"full name with NUL", nil, func(c *user.Register) { c.FullName = "Ada\x00" }, invalid("full_name")},
		{"full name of two lines", nil, func(c *user.Register) { c.FullName = "Ada\nLovelace" }, invalid("full_name")},
		// The caller normalises the email; the event holds it normalised.
		{"email not normalised", nil, func(c *user.Register) { c.Email = "Ada@example.com" }, invalid("email")},
		{"email with a control character", nil, func(c *user.Register) { c.Email = "ada\x7f@example.com" }, invalid("email")},
		{"no password hash", nil, func(c *user.Register) { c.PasswordHash = "" }, invalid("password_hash")},
		{"everything missing, all listed", nil, func(c *user.Register) { *c = user.Register{} },
			invalid("user_id", "email", "full_name", "password_hash")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.cmd(&c)
			events, err := user.DecideRegister(user.Fold(given(tt.given...)), c)
			tt.then.Check(t, events, err)
		})
	}
}

func TestFoldRegistered(t *testing.T) {
	s := user.Fold(given(ada, adaCreds))
	if !s.Exists() || s.ID != "u1" || s.Email != "ada@example.com" || s.FullName != "Ada Lovelace" ||
		!reflect.DeepEqual(s.Roles, []string{"customer"}) || s.PasswordHash != "hash-1" || !s.CreatedAt.Equal(t0) || s.Version != 1 {
		t.Errorf("state %+v", s)
	}
	if !s.HasRole("customer") || s.HasRole("admin") {
		t.Errorf("roles %v", s.Roles)
	}
	empty := user.Fold(nil)
	if empty.Exists() || empty.Version != -1 || !reflect.DeepEqual(empty, user.New()) {
		t.Errorf("empty %+v", empty)
	}
	// Events of other streams change nothing but the version.
	other := user.Evolve(s, domain.Recorded{Event: unique.Claimed{Value: "x", OwnerID: "u9"}, Version: 2})
	other.Version = s.Version
	if !reflect.DeepEqual(other, s) {
		t.Errorf("a foreign event changed the user: %+v", other)
	}
	if user.Stream("u1") != "user-u1" {
		t.Errorf("Stream = %q", user.Stream("u1"))
	}
}

func TestFoldRoles(t *testing.T) {
	tests := []struct {
		name  string
		given []domain.Event
		roles []string
	}{
		{"granted", []domain.Event{ada, grant("vendor")}, []string{"customer", "vendor"}},
		{"granted twice is kept once", []domain.Event{ada, grant("vendor"), grant("vendor")}, []string{"customer", "vendor"}},
		{"revoked", []domain.Event{ada, grant("vendor"), revoke("customer")}, []string{"vendor"}},
		{"revoked a role not held", []domain.Event{ada, revoke("admin")}, []string{"customer"}},
		{"revoked and granted again", []domain.Event{ada, grant("admin"), revoke("admin"), grant("admin")}, []string{"customer", "admin"}},
		{"every role revoked", []domain.Event{ada, revoke("customer")}, []string{}},
	}
	for _, tt := range tests {
		s := user.Fold(given(tt.given...))
		if fmt.Sprint(s.Roles) != fmt.Sprint(tt.roles) {
			t.Errorf("%s: roles %v, want %v", tt.name, s.Roles, tt.roles)
		}
	}
	// Evolve never changes the roles of the state it was given.
	before := user.Fold(given(ada, grant("vendor"), grant("admin")))
	_ = user.Evolve(before, domain.Recorded{Event: revoke("customer"), Version: 3})
	_ = user.Evolve(before, domain.Recorded{Event: grant("vendor"), Version: 3})
	if fmt.Sprint(before.Roles) != "[customer vendor admin]" {
		t.Errorf("Evolve changed an earlier state: %v", before.Roles)
	}
}

func TestValidRole(t *testing.T) {
	for role, want := range map[string]bool{
		"customer": true, "vendor": true, "admin": true,
		"": false, "Admin": false, "root": false, "superuser": false, " admin": false,
	} {
		if got := user.ValidRole(role); got != want {
			t.Errorf("ValidRole(%q) = %v", role, got)
		}
	}
}

func TestDecideGrantRole(t *testing.T) {
	tests := []struct {
		name  string
		given []domain.Event
		role  string
		then  outcome
	}{
		{"vendor", []domain.Event{ada}, "vendor", ok(grant("vendor"))},
		{"admin", []domain.Event{ada}, "admin", ok(grant("admin"))},
		{"customer again changes nothing", []domain.Event{ada}, "customer", noop},
		{"vendor twice changes nothing", []domain.Event{ada, grant("vendor")}, "vendor", noop},
		{"after a revocation", []domain.Event{ada, grant("admin"), revoke("admin")}, "admin", ok(grant("admin"))},
		{"unknown role", []domain.Event{ada}, "superuser", invalid("role")},
		{"empty role", []domain.Event{ada}, "", invalid("role")},
		{"role in another case", []domain.Event{ada}, "Admin", invalid("role")},
		{"no user", nil, "vendor", notFound},
		{"fenced id", []domain.Event{fenced}, "vendor", notFound},
		{"unknown role and no user: the role is checked first", nil, "superuser", invalid("role")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := user.DecideGrantRole(user.Fold(given(tt.given...)), tt.role)
			tt.then.Check(t, events, err)
		})
	}
}

func admins(ids ...string) user.Admins {
	a := user.NewAdmins()
	for i, id := range ids {
		a = user.EvolveAdmins(a, domain.Recorded{Event: user.AdminAdded{UserID: id}, Version: int64(i)})
	}
	return a
}

func TestDecideRevokeRole(t *testing.T) {
	admin := []domain.Event{ada, grant("admin")}
	tests := []struct {
		name   string
		given  []domain.Event
		role   string
		admins user.Admins
		then   outcome
	}{
		{"customer", []domain.Event{ada}, "customer", admins(), ok(revoke("customer"))},
		{"vendor", []domain.Event{ada, grant("vendor")}, "vendor", admins(), ok(revoke("vendor"))},
		{"a role not held changes nothing", []domain.Event{ada}, "vendor", admins(), noop},
		{"a role already revoked changes nothing", []domain.Event{ada, grant("vendor"), revoke("vendor")}, "vendor", admins(), noop},
		{"admin, with another admin left", admin, "admin", admins("u1", "u2"), ok(revoke("admin"))},
		{"admin, with two other admins left", admin, "admin", admins("u3", "u1", "u2"), ok(revoke("admin"))},
		{"admin, the last one", admin, "admin", admins("u1"), lastOne},
		{"admin, the last one after others left", admin, "admin",
			user.EvolveAdmins(admins("u1", "u2"), domain.Recorded{Event: user.AdminRemoved{UserID: "u2"}, Version: 2}), lastOne},
		{"customer from the last admin", admin, "customer", admins("u1"), ok(revoke("customer"))},
		{"admin from a user who is not one, last admin elsewhere", []domain.Event{ada}, "admin", admins("u2"), noop},
		{"unknown role", []domain.Event{ada}, "superuser", admins(), invalid("role")},
		{"empty role", []domain.Event{ada}, "", admins(), invalid("role")},
		{"no user", nil, "vendor", admins(), notFound},
		{"fenced id", []domain.Event{fenced}, "vendor", admins(), notFound},
		{"unknown role and no user: the role is checked first", nil, "root", admins(), invalid("role")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := user.DecideRevokeRole(user.Fold(given(tt.given...)), tt.role, tt.admins)
			tt.then.Check(t, events, err)
		})
	}
}

func TestAdmins(t *testing.T) {
	a := user.NewAdmins()
	if a.Count() != 0 || a.Has("u1") || a.Version != -1 {
		t.Fatalf("new admins %+v", a)
	}
	a1 := admins("u1")
	a2 := user.EvolveAdmins(a1, domain.Recorded{Event: user.AdminAdded{UserID: "u2"}, Version: 1})
	a3 := user.EvolveAdmins(a2, domain.Recorded{Event: user.AdminRemoved{UserID: "u1"}, Version: 2})
	if a1.Count() != 1 || !a1.Has("u1") || a1.Has("u2") {
		t.Errorf("evolving changed an earlier set: %d %v %v", a1.Count(), a1.Has("u1"), a1.Has("u2"))
	}
	if a2.Count() != 2 || !a2.Has("u1") || !a2.Has("u2") || a2.Version != 1 {
		t.Errorf("a2 count %d version %d", a2.Count(), a2.Version)
	}
	if a3.Count() != 1 || a3.Has("u1") || !a3.Has("u2") || a3.Version != 2 {
		t.Errorf("a3 count %d version %d", a3.Count(), a3.Version)
	}
	// Adding twice keeps one; removing an absent id changes nothing but the version.
	a4 := user.EvolveAdmins(a2, domain.Recorded{Event: user.AdminAdded{UserID: "u2"}, Version: 3})
	a5 := user.EvolveAdmins(user.NewAdmins(), domain.Recorded{Event: user.AdminRemoved{UserID: "u9"}, Version: 0})
	if a4.Count() != 2 || a5.Count() != 0 || a5.Version != 0 {
		t.Errorf("a4 %d a5 %d", a4.Count(), a5.Count())
	}
}

func TestDecideAdminsSet(t *testing.T) {
	tests := []struct {
		name   string
		admins user.Admins
		add    outcome
		remove outcome
	}{
		// An admin the set missed is counted in: with no other, it stays.
		{"empty set", admins(), ok(user.AdminAdded{UserID: "u1"}), lastOne},
		{"u1 the only admin", admins("u1"), noop, lastOne},
		{"u1 and another", admins("u2", "u1"), noop, ok(user.AdminRemoved{UserID: "u1"})},
		{"only another", admins("u2"), ok(user.AdminAdded{UserID: "u1"}), noop},
		{"three admins", admins("u1", "u2", "u3"), noop, ok(user.AdminRemoved{UserID: "u1"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.add.Check(t, user.DecideAdminAdded(tt.admins, "u1"), nil)
			events, err := user.DecideAdminRemoved(tt.admins, "u1")
			tt.remove.Check(t, events, err)
		})
	}
}

func TestDecideAbandon(t *testing.T) {
	tests := []struct {
		name  string
		given []domain.Event
		then  outcome
	}{
		{"empty stream is fenced", nil, ok(user.RegistrationAbandoned{UserID: "u1"})},
		{"registered user is left alone", []domain.Event{ada, adaCreds}, noop},
		{"fenced stream is left alone", []domain.Event{fenced}, noop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.then.Check(t, user.DecideAbandon(user.Fold(given(tt.given...)), "u1"), nil)
		})
	}
	s := user.Fold(given(fenced))
	if s.Exists() || !s.Abandoned || s.Version != 0 {
		t.Errorf("fenced state %+v", s)
	}
}

func TestIsSecret(t *testing.T) {
	for typ, want := range map[string]bool{
		"user.credentials_set":            true,
		user.CredentialsSet{}.EventType(): true,
		"user.registered":                 false,
		"user.role_granted":               false,
		"user.role_revoked":               false,
		"user.registration_abandoned":     false,
		"user.admin_added":                false,
		"order.paid":                      false,
		"":                                false,
		"USER.CREDENTIALS_SET":            false,
	} {
		if got := user.IsSecret(typ); got != want {
			t.Errorf("IsSecret(%q) = %v, want %v", typ, got, want)
		}
	}
	// The secret type is exactly the one that carries the hash.
	for typ := range user.Registry() {
		ev, err := user.Registry().Decode(typ, 1, []byte(`{"user_id":"u1"}`))
		if err != nil {
			t.Fatal(err)
		}
		_, carries := reflect.TypeOf(ev).FieldByName("PasswordHash")
		if carries != user.IsSecret(typ) {
			t.Errorf("%s: carries the hash %v, IsSecret %v", typ, carries, user.IsSecret(typ))
		}
	}
}

func TestEmailStream(t *testing.T) {
	a, b := user.EmailStream("ada@example.com"), user.EmailStream("ada@example.com")
	if a != b || !strings.HasPrefix(a, user.EmailStreamPrefix) || a != unique.Stream(user.EmailStreamPrefix, "ada@example.com") {
		t.Errorf("EmailStream = %q, %q", a, b)
	}
	if user.EmailStream("bob@example.com") == a {
		t.Error("two emails share a stream")
	}
	if strings.Contains(a, "ada") {
		t.Errorf("the stream name shows the email: %q", a)
	}
}
