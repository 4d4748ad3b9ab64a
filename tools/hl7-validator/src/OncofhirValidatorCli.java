import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

import org.hl7.fhir.r5.context.ILoggingService;
import org.hl7.fhir.r5.context.SystemOutLoggingService;
import org.hl7.fhir.r5.formats.ParserFactory;
import org.hl7.fhir.utilities.FhirPublication;
import org.hl7.fhir.utilities.TimeTracker;
import org.hl7.fhir.validation.IgLoader;
import org.hl7.fhir.validation.ValidationEngine;
import org.hl7.fhir.validation.ValidationEngine.ValidationEngineBuilder;
import org.hl7.fhir.validation.ValidatorCli;
import org.hl7.fhir.validation.cli.model.CliContext;
import org.hl7.fhir.validation.cli.services.ValidationService;
import org.hl7.fhir.validation.cli.utils.Params;

/**
 * The official HL7 validator command line, unchanged except for two package versions.
 *
 * <p>Why this exists: the CLI hard-codes the terminology package {@code hl7.terminology.r4#6.2.0} and the extensions
 * package {@code hl7.fhir.uv.extensions.r4#5.2.0}; neither version is on the npm registry, so an offline machine
 * whose package cache was filled from npm cannot start the stock CLI. This class runs the very same
 * {@link ValidatorCli} (same flags, same validation, same OperationOutcome output) with the terminology version
 * taken from {@code -Doncofhir.tho} (default 7.0.1, on npm) and the extensions package left out unless
 * {@code -Doncofhir.extensions} names a version (R4B's core package defines the core extensions we use).
 */
public final class OncofhirValidatorCli extends ValidatorCli {

  private OncofhirValidatorCli() {
    super(new PinnedService());
  }

  public static void main(String[] args) throws Exception {
    System.setProperty("slf4j.internal.verbosity", "WARN");
    ParserFactory.registerCustomResources();
    CliContext context = Params.loadCliContext(args);
    new OncofhirValidatorCli().readParamsAndExecuteTask(context, args);
  }

  /** The CLI's validation service with a builder that pins the package versions. */
  private static final class PinnedService extends ValidationService {
    @Override
    protected ValidationEngineBuilder getValidationEngineBuilder() {
      return new PinnedBuilder();
    }

    /**
     * The stock method, minus its two unversioned loads ({@code hl7.terminology} and {@code hl7.fhir.uv.extensions},
     * "latest" from a package server): offline they cannot resolve, and for R4B the versioned terminology package
     * (loaded by the builder) and the core package's own extensions already hold those definitions.
     */
    @Override
    protected void loadIgsAndExtensions(ValidationEngine engine, CliContext context, TimeTracker tt)
        throws java.io.IOException, java.net.URISyntaxException {
      FhirPublication publication = FhirPublication.fromCode(context.getSv());
      IgLoader loader = new IgLoader(engine.getPcm(), engine.getContext(), engine.getVersion(), engine.isDebug());
      System.out.print("  Terminology server " + context.getTxServer());
      String txVersion = engine.setTerminologyServer(
          context.getTxServer(), context.getTxLog(), publication, !context.getNoEcosystem());
      System.out.println(" - Version " + txVersion + " (" + tt.milestone() + ")");
      engine.setDebug(context.isDoDebug());
      engine.getContext().setLogger(new SystemOutLoggingService(context.isDoDebug()));
      for (String ig : context.getIgs()) {
        loader.loadIg(engine.getIgs(), engine.getBinaries(), ig, context.isRecursive());
      }
      System.out.println("  Package Summary: " + engine.getContext().loadedPackageSummary());
    }
  }

  /**
   * Records the CLI's builder calls, then replays them on a stock builder with the pinned versions. The stock
   * builder returns a new instance from every {@code with...} call, so overriding only the version setters would
   * be lost after the first call.
   */
  private static final class PinnedBuilder extends ValidationEngineBuilder {
    private final List<UnaryOperator<ValidationEngineBuilder>> steps = new ArrayList<>();

    private PinnedBuilder record(UnaryOperator<ValidationEngineBuilder> step) {
      steps.add(step);
      return this;
    }

    private ValidationEngineBuilder replay() {
      ValidationEngineBuilder builder = new ValidationEngineBuilder();
      for (UnaryOperator<ValidationEngineBuilder> step : steps) {
        builder = step.apply(builder);
      }
      String extensions = System.getProperty("oncofhir.extensions", "");
      return builder
          .withThoVersion(System.getProperty("oncofhir.tho", "7.0.1"))
          .withExtensionsVersion(extensions.isEmpty() ? null : extensions);
    }

    @Override
    public ValidationEngine fromSource(String src) throws java.io.IOException, java.net.URISyntaxException {
      return replay().fromSource(src);
    }

    @Override
    public ValidationEngine fromNothing() throws java.io.IOException {
      return replay().fromNothing();
    }

    @Override
    public ValidationEngineBuilder withThoVersion(String version) {
      return this; // pinned in replay()
    }

    @Override
    public ValidationEngineBuilder withExtensionsVersion(String version) {
      return this; // pinned in replay()
    }

    @Override
    public ValidationEngineBuilder withTxServer(String server, String log, FhirPublication version, boolean eco) {
      return record(b -> b.withTxServer(server, log, version, eco));
    }

    @Override
    public ValidationEngineBuilder withNoTerminologyServer() {
      return record(ValidationEngineBuilder::withNoTerminologyServer);
    }

    @Override
    public ValidationEngineBuilder withTerminologyCachePath(String path) {
      return record(b -> b.withTerminologyCachePath(path));
    }

    @Override
    public ValidationEngineBuilder withUserAgent(String agent) {
      return record(b -> b.withUserAgent(agent));
    }

    @Override
    public ValidationEngineBuilder withVersion(String version) {
      return record(b -> b.withVersion(version));
    }

    @Override
    public ValidationEngineBuilder withTimeTracker(TimeTracker tracker) {
      return record(b -> b.withTimeTracker(tracker));
    }

    @Override
    public ValidationEngineBuilder withCanRunWithoutTerminologyServer(boolean can) {
      return record(b -> b.withCanRunWithoutTerminologyServer(can));
    }

    @Override
    public ValidationEngineBuilder withLoggingService(ILoggingService service) {
      return record(b -> b.withLoggingService(service));
    }
  }
}
