package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdIdentity(f *Factory) *cobra.Command {
	cmd := newGroup("identity", "Manage service principals, users and directory roles")
	sp := newGroup("sp", "Manage service principals")
	sp.AddCommand(newCmdSPCreate(f, nil), newCmdSPList(f, nil), newCmdSPCredential(f), newCmdSPFederated(f), newCmdRedirectURI(f))
	user := newGroup("user", "Manage users")
	user.AddCommand(newCmdUserCreate(f, nil), newCmdUserList(f, nil))
	role := newGroup("role", "Manage directory roles (Global, Power Platform and Dynamics 365 Administrator)")
	role.AddCommand(newCmdDirRoleAssign(f, nil), newCmdDirRoleList(f, nil), newCmdDirRoleRemove(f, nil))
	cmd.AddCommand(sp, user, role)
	return cmd
}

// SPCreateOptions are the parsed arguments of "keyhold identity sp create".
type SPCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	Name string
}

func newCmdSPCreate(f *Factory, runF func(*SPCreateOptions) error) *cobra.Command {
	opts := &SPCreateOptions{IO: f.IO, Client: armServices(f)}
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a service principal with a client secret",
		Long: `Create a service principal and a client secret for it. The secret is printed
once and never again: store it now. Needs the Global Administrator role.`,
		Example: `  keyhold identity sp create --name contoso-automation
  keyhold identity sp create --name contoso-automation -o json > sp.json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return spCreateRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "Display `NAME`")
	return cmd
}

// newSPJSON is what "identity sp create -o json" prints.
type newSPJSON struct {
	DisplayName   string    `json:"displayName"`
	AppID         string    `json:"appId"`
	ObjectID      string    `json:"objectId"`
	TenantID      string    `json:"tenantId"`
	ClientSecret  string    `json:"clientSecret"`
	SecretExpires time.Time `json:"secretExpires"`
}

func spCreateRun(opts *SPCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	sp, err := c.CreateServicePrincipal(opts.Ctx, opts.Name)
	if err != nil {
		return err
	}
	p := sp.Principal
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, newSPJSON{DisplayName: p.DisplayName, AppID: p.AppID, ObjectID: p.ID, TenantID: p.TenantID,
			ClientSecret: sp.Secret, SecretExpires: sp.SecretExpires})
	}
	fmt.Fprintf(opts.IO.Out, "Created service principal %s\n", cell(p.DisplayName))
	tw := newTable(opts.IO.Out)
	row(tw, "  App (client) ID:", p.AppID)
	row(tw, "  Object ID:", p.ID)
	row(tw, "  Client secret:", sp.Secret)
	row(tw, "  Secret expires:", timestamp(sp.SecretExpires))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(opts.IO.ErrOut, "The client secret is shown only now: store it safely.")
	return nil
}

// SPListOptions are the parsed arguments of "keyhold identity sp list".
type SPListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
}

func newCmdSPList(f *Factory, runF func(*SPListOptions) error) *cobra.Command {
	opts := &SPListOptions{IO: f.IO, Client: armServices(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List service principals and managed identities",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return spListRun(opts)
		},
	}
}

func spListRun(opts *SPListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ps, err := c.ServicePrincipals(opts.Ctx)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if ps == nil {
			ps = []*keyhold.Principal{}
		}
		return printJSON(opts.IO.Out, ps)
	}
	if opts.Format == FormatID {
		for _, p := range ps {
			fmt.Fprintln(opts.IO.Out, p.ID)
		}
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "OBJECT ID", "APP ID", "TYPE", "NAME")
	for _, p := range ps {
		row(tw, p.ID, p.AppID, string(p.Type), p.DisplayName)
	}
	return tw.Flush()
}

// UserCreateOptions are the parsed arguments of "keyhold identity user
// create".
type UserCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	Name     string
	UPN      string
	Password string // "" generates one
}

func newCmdUserCreate(f *Factory, runF func(*UserCreateOptions) error) *cobra.Command {
	opts := &UserCreateOptions{IO: f.IO, Client: armServices(f)}
	cmd := &cobra.Command{
		Use:   "create --name NAME --upn USER@DOMAIN [--password PASSWORD]",
		Short: "Create a user who signs in with a password",
		Long: `Create a user. Without --password (or KEYHOLD_USER_PASSWORD), a password is
generated and printed once. Users sign in at the token endpoint with
grant_type=password; the server keeps only an argon2id hash of the password.
A password must be 12 to 256 bytes, contain a letter, and not be a common
one (the server names the rule it breaks). Five wrong passwords in a row
lock the user out for a minute, and longer after each further one.
Needs the Global Administrator role.`,
		Example: `  keyhold identity user create --name "Ada Lovelace" --upn ada@contoso.example`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name", "upn"); err != nil {
				return err
			}
			if !cmd.Flags().Changed("password") {
				opts.Password = f.Getenv("KEYHOLD_USER_PASSWORD")
			}
			if runF != nil {
				return runF(opts)
			}
			return userCreateRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "Display `NAME`")
	cmd.Flags().StringVar(&opts.UPN, "upn", "", "User principal name (`USER@DOMAIN`) to sign in with")
	cmd.Flags().StringVar(&opts.Password, "password", "", "`PASSWORD` (default $KEYHOLD_USER_PASSWORD, else generated)")
	return cmd
}

func userCreateRun(opts *UserCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	u, err := c.CreateUser(opts.Ctx, opts.Name, opts.UPN, opts.Password)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, struct {
			*keyhold.User
			Password string `json:"password,omitempty"`
		}{u.User, u.Password})
	}
	fmt.Fprintf(opts.IO.Out, "Created user %s (object id %s)\n", cell(u.User.UserPrincipalName), cell(u.User.ID))
	if u.Password != "" {
		fmt.Fprintf(opts.IO.Out, "  Password: %s\n", cell(u.Password))
		fmt.Fprintln(opts.IO.ErrOut, "The generated password is shown only now: give it to the user safely.")
	}
	return nil
}

// UserListOptions are the parsed arguments of "keyhold identity user list".
type UserListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
}

func newCmdUserList(f *Factory, runF func(*UserListOptions) error) *cobra.Command {
	opts := &UserListOptions{IO: f.IO, Client: armServices(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return userListRun(opts)
		},
	}
}

func userListRun(opts *UserListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	us, err := c.Users(opts.Ctx)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if us == nil {
			us = []*keyhold.User{}
		}
		return printJSON(opts.IO.Out, us)
	}
	tw := newTable(opts.IO.Out)
	row(tw, "OBJECT ID", "USER PRINCIPAL NAME", "NAME")
	for _, u := range us {
		row(tw, u.ID, u.UserPrincipalName, u.DisplayName)
	}
	return tw.Flush()
}

// DirRoleOptions are the parsed arguments of "keyhold identity role
// assign", "list" and "remove".
type DirRoleOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	Role     keyhold.DirectoryRole // "" for list without --role
	Assignee string
}

// directoryRoleFlag parses --role: a directory role's name or template id.
func directoryRoleFlag(s string) (keyhold.DirectoryRole, error) {
	r, ok := keyhold.FindDirectoryRole(s)
	if !ok {
		return "", usageErrorf("--role %q is not a directory role: use %q, %q or %q (or their template ids)", s,
			keyhold.RoleGlobalAdministrator, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator)
	}
	return r, nil
}

func newCmdDirRole(f *Factory, runF func(*DirRoleOptions) error, use, short string, required []string, run func(*DirRoleOptions) error) *cobra.Command {
	opts := &DirRoleOptions{IO: f.IO, Client: armServices(f)}
	var role string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, required...); err != nil {
				return err
			}
			if role != "" {
				r, err := directoryRoleFlag(role)
				if err != nil {
					return err
				}
				opts.Role = r
			}
			if runF != nil {
				return runF(opts)
			}
			return run(opts)
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "Directory `ROLE`, by name or template id")
	cmd.Flags().StringVar(&opts.Assignee, "assignee", "", "Object `ID` of the user or service principal")
	return cmd
}

func newCmdDirRoleAssign(f *Factory, runF func(*DirRoleOptions) error) *cobra.Command {
	cmd := newCmdDirRole(f, runF, "assign --role ROLE --assignee OBJECT-ID", "Give a principal a directory role (needs Global Administrator)",
		[]string{"role", "assignee"}, dirRoleAssignRun)
	cmd.Example = `  keyhold identity role assign --role "Power Platform Administrator" --assignee OBJECT-ID`
	return cmd
}

func newCmdDirRoleList(f *Factory, runF func(*DirRoleOptions) error) *cobra.Command {
	cmd := newCmdDirRole(f, runF, "list [--assignee OBJECT-ID] [--role ROLE]", "List directory role assignments", nil, dirRoleListRun)
	cmd.Aliases = []string{"ls"}
	return cmd
}

func newCmdDirRoleRemove(f *Factory, runF func(*DirRoleOptions) error) *cobra.Command {
	cmd := newCmdDirRole(f, runF, "remove --role ROLE --assignee OBJECT-ID", "Take a directory role from a principal (needs Global Administrator)",
		[]string{"role", "assignee"}, dirRoleRemoveRun)
	cmd.Aliases = []string{"rm"}
	return cmd
}

func dirRoleAssignRun(opts *DirRoleOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	a, err := c.AssignDirectoryRole(opts.Ctx, opts.Assignee, opts.Role)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, a)
	}
	fmt.Fprintf(opts.IO.Out, "Gave %s the %s role (assignment %s)\n", cell(a.PrincipalID), a.Role, cell(a.ID))
	return nil
}

func dirRoleListRun(opts *DirRoleOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	as, err := c.DirectoryRoleAssignments(opts.Ctx, opts.Assignee)
	if err != nil {
		return err
	}
	out := []*keyhold.DirectoryRoleAssignment{}
	for _, a := range as {
		if opts.Role == "" || a.Role == opts.Role {
			out = append(out, a)
		}
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(opts.IO.Out, "No directory role assignments")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "PRINCIPAL", "ROLE", "ASSIGNMENT")
	for _, a := range out {
		row(tw, a.PrincipalID, string(a.Role), a.ID)
	}
	return tw.Flush()
}

func dirRoleRemoveRun(opts *DirRoleOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.RemoveDirectoryRoleAssignment(opts.Ctx, keyhold.DirectoryRoleTemplates[opts.Role]+"_"+opts.Assignee); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Took the %s role from %s\n", opts.Role, cell(opts.Assignee))
	return nil
}
