package http_test

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// The admin center's test users' sign-in names and passwords.
const (
	patUPN, patPW = "pat@contoso.example", "Pat's long passphrase for keyhold"
)

// adminApp registers the admin center's application, with its callback,
// as the admin center's browser tests sign in through it, and returns its
// application id.
func (s *cmkStack) adminApp(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	app, err := s.client.CreateServicePrincipal(ctx, "Keyhold admin center")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.AddRedirectURI(ctx, app.Principal.AppID, s.url+"/admin/callback"); err != nil {
		t.Fatal(err)
	}
	return app.Principal.AppID
}

// platformAdmin creates Pat, a Power Platform administrator who signs in
// with patUPN and patPW, with Reader on readerOn unless it is empty (the
// spec's grant of Reader on the enterprise policy), and returns Pat's id.
func (s *cmkStack) platformAdmin(t *testing.T, readerOn string) string {
	t.Helper()
	ctx := context.Background()
	pat, err := s.client.CreateUser(ctx, "Pat", patUPN, patPW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.AssignDirectoryRole(ctx, pat.User.ID, keyhold.RolePowerPlatformAdministrator); err != nil {
		t.Fatal(err)
	}
	if readerOn != "" {
		reader, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
		if err := s.client.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: readerOn, RoleDefinitionID: reader.ID, PrincipalID: pat.User.ID, PrincipalType: "User"}); err != nil {
			t.Fatal(err)
		}
	}
	return pat.User.ID
}
