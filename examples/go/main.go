// A CRM's consumer of omnigate's interactions stream (nats.go): creates or binds to a durable
// pull consumer, fetches, processes each interaction, acks it, and on the next start resumes
// after the last one it acked. Copy it and replace handleInteraction with your own idempotent
// write.
//
//	crm-consumer [--url nats://127.0.0.1:4222] [--durable crm] [--filter SUBJECT]
//	             [--since 2026-12-01T09:00:00Z] [--max N] [--stream OMNIGATE_INTERACTIONS]
//
// Environment: NATS_URL, NATS_USER + NATS_PASSWORD or NATS_TOKEN, CRM_CONSUMER (the durable
// name), OMNIGATE_STREAM. Exit status: 0 done (--max reached or stopped by a signal),
// 1 a NATS or processing error, 2 bad arguments.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

const defaultFilter = "omnigate.interactions.>"

type options struct {
	url, durable, stream, filter string
	since                        time.Time
	max                          int
}

// usageError is a mistake in the command line: exit status 2 with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func parseArgs(args []string) (options, error) {
	var o options
	var since string
	fs := flag.NewFlagSet("crm-consumer", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", envOr("NATS_URL", nats.DefaultURL), "NATS server(s), comma-separated (env NATS_URL)")
	fs.StringVar(&o.durable, "durable", envOr("CRM_CONSUMER", "crm"), "the durable consumer: created on first run, resumed after (env CRM_CONSUMER)")
	fs.StringVar(&o.filter, "filter", "", "only these subjects, for a new consumer (default "+defaultFilter+")")
	fs.StringVar(&since, "since", "", "a new consumer starts at this RFC 3339 time instead of the stream's start")
	fs.IntVar(&o.max, "max", 0, "stop after N interactions (0: run until SIGINT/SIGTERM)")
	fs.StringVar(&o.stream, "stream", envOr("OMNIGATE_STREAM", "OMNIGATE_INTERACTIONS"), "the stream (env OMNIGATE_STREAM)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // the usage is printed already
		}
		return o, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, usageError{"unexpected argument " + fs.Arg(0)}
	}
	if o.max < 0 {
		return o, usageError{"--max must be a positive integer"}
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return o, usageError{"--since must be an RFC 3339 time such as 2026-12-01T09:00:00Z, not " + since}
		}
		o.since = t
	}
	return o, nil
}

// ensureConsumer returns the consumer to read from: the existing durable one (a restart resumes
// after its last ack), or a new one starting at the stream's first message or at --since.
func ensureConsumer(js nats.JetStreamContext, o options) (*nats.ConsumerInfo, error) {
	info, err := js.ConsumerInfo(o.stream, o.durable)
	switch {
	case err == nil:
		if !o.since.IsZero() {
			return nil, usageError{"consumer " + o.durable + " exists and resumes where it stopped; --since applies to a new consumer only: pick another --durable name (or delete this one) to replay from a time"}
		}
		if o.filter != "" && info.Config.FilterSubject != o.filter {
			return nil, usageError{"consumer " + o.durable + " exists with filter " + info.Config.FilterSubject + "; pick another --durable name for filter " + o.filter}
		}
		return info, nil
	case errors.Is(err, nats.ErrStreamNotFound):
		return nil, fmt.Errorf("stream %s not found: is the gateway running against this NATS?", o.stream)
	case !errors.Is(err, nats.ErrConsumerNotFound):
		return nil, fmt.Errorf("consumer info %s: %w", o.durable, err)
	}
	cfg := &nats.ConsumerConfig{
		Durable:   o.durable,
		AckPolicy: nats.AckExplicitPolicy,
		// An interaction not acked within AckWait (a crash mid-way) is delivered again.
		AckWait:       30 * time.Second,
		FilterSubject: o.filter,
		DeliverPolicy: nats.DeliverAllPolicy,
	}
	if cfg.FilterSubject == "" {
		cfg.FilterSubject = defaultFilter
	}
	from := "the first interaction"
	if !o.since.IsZero() {
		cfg.DeliverPolicy = nats.DeliverByStartTimePolicy
		cfg.OptStartTime = &o.since
		from = o.since.UTC().Format(time.RFC3339Nano)
	}
	info, err = js.AddConsumer(o.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", o.durable, err)
	}
	fmt.Fprintf(os.Stderr, "created consumer %s on %s from %s\n", o.durable, o.stream, from)
	return info, nil
}

// interaction holds the fields of an interaction.v1 document this example reads; decode the
// rest (schemas/interaction.v1.schema.json) as your CRM needs it.
type interaction struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Kind    string `json:"kind"`
}

// handleInteraction is your CRM's work: an upsert keyed by the interaction id (delivery is at
// least once). The example prints only identifiers: never message text, phones or e-mails in logs.
func handleInteraction(i interaction) error {
	_, err := fmt.Printf("%s %s %s\n", i.ID, i.Channel, i.Kind)
	return err
}

func run(o options) error {
	connectOptions := []nats.Option{nats.Name("crm-consumer-" + o.durable), nats.MaxReconnects(-1)}
	if user := os.Getenv("NATS_USER"); user != "" {
		connectOptions = append(connectOptions, nats.UserInfo(user, os.Getenv("NATS_PASSWORD")))
	} else if token := os.Getenv("NATS_TOKEN"); token != "" {
		connectOptions = append(connectOptions, nats.Token(token))
	}
	nc, err := nats.Connect(o.url, connectOptions...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", o.url, err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	info, err := ensureConsumer(js, o)
	if err != nil {
		return err
	}
	// Bind: no stream lookup by subject (one permission fewer); the subject must be the
	// consumer's own filter.
	sub, err := js.PullSubscribe(info.Config.FilterSubject, o.durable, nats.Bind(o.stream, o.durable))
	if err != nil {
		return fmt.Errorf("bind consumer %s: %w", o.durable, err)
	}

	// SIGINT or SIGTERM ends a fetch at once; what was acked stays acked.
	stopped, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	processed := 0
	for o.max == 0 || processed < o.max {
		wanted := 64
		if o.max > 0 && o.max-processed < wanted {
			wanted = o.max - processed
		}
		fetchCtx, cancel := context.WithTimeout(stopped, 5*time.Second)
		msgs, err := sub.Fetch(wanted, nats.Context(fetchCtx))
		cancel()
		if len(msgs) == 0 {
			switch {
			case stopped.Err() != nil:
				return nil
			case errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
				continue // nothing new yet
			case errors.Is(err, nats.ErrConsumerDeleted) || nc.IsClosed():
				return fmt.Errorf("fetch: %w", err)
			case err != nil:
				// A NATS restart or a leader change: the client reconnects by itself, and
				// the durable consumer is where it was.
				fmt.Fprintf(os.Stderr, "fetch: %v; retrying\n", err)
				select {
				case <-stopped.Done():
				case <-time.After(time.Second):
				}
				continue
			}
		}
		for _, m := range msgs {
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("not a JetStream message: %w", err)
			}
			var i interaction
			if err := json.Unmarshal(m.Data, &i); err != nil {
				// Not an interaction.v1 document: never delivered again, and said once.
				fmt.Fprintf(os.Stderr, "stream sequence %d: not JSON, terminated\n", meta.Sequence.Stream)
				if err := m.Term(); err != nil {
					return fmt.Errorf("term stream sequence %d: %w", meta.Sequence.Stream, err)
				}
				continue
			}
			if err := handleInteraction(i); err != nil {
				return fmt.Errorf("process %s: %w", i.ID, err)
			}
			// AckSync waits for the server's confirmation: once it returns, a restart does not
			// deliver this interaction again.
			if err := m.AckSync(); err != nil {
				return fmt.Errorf("ack stream sequence %d: %w", meta.Sequence.Stream, err)
			}
			processed++
		}
		if stopped.Err() != nil {
			return nil // after acking what this fetch brought
		}
	}
	return nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crm-consumer:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
