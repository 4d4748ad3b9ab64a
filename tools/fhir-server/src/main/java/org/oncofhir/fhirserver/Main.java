package org.oncofhir.fhirserver;

import ca.uhn.fhir.rest.server.RestfulServer;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

/**
 * Starts a HAPI FHIR JPA server (R4B, in-memory H2) in an embedded Jetty bound to one address, by default
 * 127.0.0.1: a local server to load the cohort into and query it back, never a server for a network.
 *
 * <p>Usage: {@code java -cp 'target/classes:target/lib/*' org.oncofhir.fhirserver.Main [--host H] [--port P]}; the
 * FHIR base is {@code http://H:P/fhir}. The data lives in memory: stopping the server discards it.
 */
public final class Main {
	private static final Logger LOG = LoggerFactory.getLogger(Main.class);

	private Main() {}

	public static void main(String[] args) throws Exception {
		String host = "127.0.0.1";
		int port = 8090;
		for (int i = 0; i < args.length; i++) {
			switch (args[i]) {
				case "--host" -> host = args[++i];
				case "--port" -> port = Integer.parseInt(args[++i]);
				default -> {
					System.err.println("usage: Main [--host 127.0.0.1] [--port 8090]; unknown argument " + args[i]);
					System.exit(2);
				}
			}
		}
		long t0 = System.nanoTime();
		AnnotationConfigApplicationContext spring = new AnnotationConfigApplicationContext(ServerConfig.class);
		RestfulServer fhir = spring.getBean(RestfulServer.class);

		QueuedThreadPool threads = new QueuedThreadPool(32, 4);
		threads.setName("fhir-http");
		Server jetty = new Server(threads);
		ServerConnector connector = new ServerConnector(jetty);
		connector.setHost(host);
		connector.setPort(port);
		connector.setIdleTimeout(300_000);
		jetty.addConnector(connector);
		ServletContextHandler context = new ServletContextHandler();
		context.setContextPath("/");
		context.addServlet(new ServletHolder("fhir", fhir), "/fhir/*");
		jetty.setHandler(context);
		jetty.setStopAtShutdown(true);
		Runtime.getRuntime().addShutdownHook(new Thread(spring::close, "spring-close"));
		jetty.start();
		LOG.info(
				"FHIR R4B server ready at http://{}:{}/fhir in {} s",
				host,
				connector.getLocalPort(),
				String.format("%.1f", (System.nanoTime() - t0) / 1e9));
		jetty.join();
	}
}
