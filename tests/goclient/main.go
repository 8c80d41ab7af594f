// A client of the control API written in Go, against code generated from
// protos/o2control.proto with protoc-gen-go and protoc-gen-go-grpc (the generated package pb is
// produced at test time next to this file, see tests/integration/test_control_go_client.py).
//
// Usage:
//
//	goclient -server HOST:PORT create WORKFLOW DETECTORS   prints "<id> <state>"
//	goclient -server HOST:PORT list                        prints "<id> <state> <workflow> <detectors>" per environment
//	goclient -server HOST:PORT info                        prints "<frameworkId> <environmentsCount>"
//	goclient -server HOST:PORT watch N                     prints "subscribed", then N events as "<environmentId> <payload> <detail>"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"aliecs.test/goclient/eventspb"
	"aliecs.test/goclient/pb"
)

func main() {
	server := flag.String("server", "127.0.0.1:32102", "control API address")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: goclient -server HOST:PORT create|list|info ...")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := pb.NewControlClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	switch args[0] {
	case "create":
		if len(args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: goclient create WORKFLOW DETECTORS")
			os.Exit(2)
		}
		reply, err := client.NewEnvironment(ctx, &pb.NewEnvironmentRequest{
			WorkflowTemplate: args[1],
			Vars:             map[string]string{"detectors": args[2], "client": "go"},
		})
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s %s\n", reply.GetEnvironment().GetId(), reply.GetEnvironment().GetState())
	case "list":
		reply, err := client.GetEnvironments(ctx, &pb.GetEnvironmentsRequest{ShowAll: true})
		if err != nil {
			fail(err)
		}
		for _, env := range reply.GetEnvironments() {
			fmt.Printf("%s %s %s %s\n", env.GetId(), env.GetState(), env.GetRootRole(),
				strings.Join(env.GetIncludedDetectors(), ","))
		}
	case "info":
		reply, err := client.GetFrameworkInfo(ctx, &pb.GetFrameworkInfoRequest{})
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s %d\n", reply.GetFrameworkId(), reply.GetEnvironmentsCount())
	case "watch":
		var n int
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: goclient watch N")
			os.Exit(2)
		}
		fmt.Sscanf(args[1], "%d", &n)
		stream, err := client.Subscribe(ctx, &pb.SubscribeRequest{})
		if err != nil {
			fail(err)
		}
		if _, err := stream.Header(); err != nil { // sent once the server registered us
			fail(err)
		}
		fmt.Println("subscribed")
		for i := 0; i < n; i++ {
			event, err := stream.Recv()
			if err != nil {
				fail(err)
			}
			fmt.Println(describe(event))
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", args[0])
		os.Exit(2)
	}
}

func describe(event *eventspb.Event) string {
	switch p := event.GetPayload().(type) {
	case *eventspb.Event_EnvironmentEvent:
		e := p.EnvironmentEvent
		return fmt.Sprintf("%s environmentEvent %s/%s/%s", e.GetEnvironmentId(), e.GetTransition(),
			e.GetTransitionStep(), e.GetMessage())
	case *eventspb.Event_RoleEvent:
		return fmt.Sprintf("%s roleEvent %s", p.RoleEvent.GetEnvironmentId(), p.RoleEvent.GetState())
	case *eventspb.Event_CallEvent:
		return fmt.Sprintf("%s callEvent %s", p.CallEvent.GetEnvironmentId(), p.CallEvent.GetFunc())
	case *eventspb.Event_RunEvent:
		return fmt.Sprintf("%s runEvent %d", p.RunEvent.GetEnvironmentId(), p.RunEvent.GetRunNumber())
	default:
		return fmt.Sprintf("- %T", p)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
