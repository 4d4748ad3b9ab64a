import java.io.ByteArrayInputStream;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

import org.hl7.fhir.r5.context.IWorkerContext;
import org.hl7.fhir.r5.elementmodel.Manager;
import org.hl7.fhir.r5.elementmodel.Manager.FhirFormat;
import org.hl7.fhir.r5.formats.ParserFactory;
import org.hl7.fhir.r5.model.Base;
import org.hl7.fhir.r5.utils.sql.Provider;
import org.hl7.fhir.r5.utils.sql.Runner;
import org.hl7.fhir.r5.utils.sql.StorageJson;
import org.hl7.fhir.utilities.json.model.JsonArray;
import org.hl7.fhir.utilities.json.model.JsonObject;
import org.hl7.fhir.utilities.json.parser.JsonParser;
import org.hl7.fhir.validation.ValidationEngine;
import org.hl7.fhir.validation.ValidationEngine.ValidationEngineBuilder;

/**
 * Runs SQL-on-FHIR v2 ViewDefinitions with the HL7 validator's own engine ({@link Runner}), as the second,
 * independent engine oncofhir's views are checked against (tests/test_views_hl7.py).
 *
 * <p>Usage: {@code OncofhirViewRunner OUT.json --ndjson BUNDLES.ndjson --view VIEW.json [--view ...] [--ndjson ...]}.
 * Writes {@code {"<view name>": [row, ...], ...}} to OUT.json. Bundles are read with the element model and the
 * FHIR R4B definitions (hl7.fhir.r4b.core#4.3.0 from the package cache, offline, as install.sh put it), so R4B
 * choice elements such as {@code medicationCodeableConcept} keep their R4B meaning.
 */
public final class OncofhirViewRunner {

  private OncofhirViewRunner() {}

  public static void main(String[] args) throws Exception {
    System.setProperty("slf4j.internal.verbosity", "WARN");
    ParserFactory.registerCustomResources();
    if (args.length < 3) {
      System.err.println("usage: OncofhirViewRunner OUT.json --ndjson BUNDLES.ndjson --view VIEW.json ...");
      System.exit(2);
    }
    ValidationEngine engine = new ValidationEngineBuilder()
        .withVersion("4.3.0")
        .withNoTerminologyServer()
        .withCanRunWithoutTerminologyServer(true)
        .withThoVersion(System.getProperty("oncofhir.tho", "7.0.1"))
        .withExtensionsVersion(null)
        .fromSource("hl7.fhir.r4b.core#4.3.0");
    IWorkerContext context = engine.getContext();
    JsonObject out = new JsonObject();
    List<Base> bundles = new ArrayList<>();
    for (int i = 1; i < args.length; i += 2) {
      if (args[i].equals("--ndjson")) {
        bundles = read(context, args[i + 1]);
      } else if (args[i].equals("--view")) {
        JsonObject view = JsonParser.parseObject(Files.readString(Paths.get(args[i + 1])));
        StorageJson storage = new StorageJson();
        Runner runner = new Runner();
        runner.setContext(context);
        runner.setStorage(storage);
        final List<Base> resources = bundles;
        runner.setProvider(new Provider() {
          @Override
          public List<Base> fetch(String resourceType) {
            List<Base> found = new ArrayList<>();
            for (Base b : resources) {
              if (b.fhirType().equals(resourceType)) {
                found.add(b);
              }
            }
            return found;
          }

          @Override
          public Base resolveReference(Base rootResource, String ref, String specifiedResourceType) {
            return null;
          }
        });
        runner.execute(view);
        JsonArray rows = storage.getRows();
        String name = view.asString("name");
        if (out.has(name)) {
          for (org.hl7.fhir.utilities.json.model.JsonElement row : rows) {
            out.getJsonArray(name).add(row);
          }
        } else {
          out.add(name, rows);
        }
      } else {
        System.err.println("unknown argument " + args[i]);
        System.exit(2);
      }
    }
    try (Writer w = new OutputStreamWriter(new FileOutputStream(args[0]), StandardCharsets.UTF_8)) {
      w.write(JsonParser.compose(out, false));
    }
  }

  private static List<Base> read(IWorkerContext context, String path) throws Exception {
    List<Base> bundles = new ArrayList<>();
    for (String line : Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        bundles.add(Manager.parseSingle(
            context, new ByteArrayInputStream(line.getBytes(StandardCharsets.UTF_8)), FhirFormat.JSON));
      }
    }
    return bundles;
  }
}
