package platform

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

// What BenchmarkCMKRekey reports beside MB/s, since on a shared machine a
// rate alone says more about the neighbours than about the re-key: the
// CPU time the re-key used, in this process and in its PostgreSQL
// backends, and on PostgreSQL how much the table and its primary key grew
// (a HOT update writes the new version in the row's own page and adds no
// index entry: migration 0052).

// processCPU is this process's CPU time so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rekeyCost samples the costs of a run: start it before the re-key, and
// call report after.
type rekeyCost struct {
	db      *sql.DB // PostgreSQL only
	cpu     time.Duration
	backend map[int]time.Duration
	heap    int64
	pkey    int64
}

func startRekeyCost(b *testing.B, s keyhold.Store) *rekeyCost {
	c := &rekeyCost{}
	if ss, ok := s.(*sqlstore.Store); ok && ss.Dialect().Numbered {
		c.db = ss.DB()
	}
	if c.db != nil {
		c.heap, c.pkey = c.sizes(b)
		c.backend = c.backendCPU(b)
	}
	c.cpu = processCPU()
	return c
}

func (c *rekeyCost) report(b *testing.B) {
	cpu := processCPU() - c.cpu
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	if c.db == nil {
		return
	}
	var server time.Duration
	for pid, t := range c.backendCPU(b) {
		server += t - c.backend[pid]
	}
	heap, pkey := c.sizes(b)
	b.ReportMetric(server.Seconds(), "pg-cpu-s")
	b.ReportMetric(float64(heap-c.heap)/1e6, "heap-MB-added")
	b.ReportMetric(float64(pkey-c.pkey)/1e6, "pkey-MB-added")
}

func (c *rekeyCost) sizes(b *testing.B) (heap, pkey int64) {
	if err := c.db.QueryRow(`SELECT pg_relation_size('data_rows'), pg_relation_size('data_rows_pkey')`).Scan(&heap, &pkey); err != nil {
		b.Fatal(err)
	}
	return heap, pkey
}

// backendCPU reads the CPU time of each server process connected to the
// benchmark's database from /proc (the server runs on this machine in
// the tests); a backend started during the run counts from zero.
func (c *rekeyCost) backendCPU(b *testing.B) map[int]time.Duration {
	rows, err := c.db.QueryContext(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // not on this machine, or gone
		}
		// Fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th, in clock ticks (100 a second).
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
