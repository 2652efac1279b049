package io.modelport.esnode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.transport.TransportAddress;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.AbstractTokenizerFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.MockNode;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.tartarus.snowball.ext.EnglishStemmer;

/**
 * A single-node Elasticsearch for ModelPort's tests and benchmarks: a real node (the server jar, HTTP over
 * the transport-netty4 module) started in this JVM by the test framework's MockNode, bound to loopback,
 * no security (the open-source server has none), data under the given home directory.
 *
 * <p>Usage: {@code java -Xmx1g -cp ... io.modelport.esnode.ModelNode HOME HTTP_PORT}. Prints
 * {@code MODELPORT_ES_READY http://127.0.0.1:PORT} once the node answers, and stops when its standard input
 * closes (the test process ended, however it ended) or on SIGTERM.
 */
public final class ModelNode {
    private ModelNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: ModelNode HOME HTTP_PORT");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "modelport-test")
            .put("node.name", "modelport-test-node")
            .put("discovery.type", "single-node")
            .put("http.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.host", "127.0.0.1")
            .put("transport.port", "0")
            // The machine is shared and its disk may be fuller than the default watermarks allow;
            // a test node must not turn its indices read-only for that.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("node.processors", Math.min(2, Runtime.getRuntime().availableProcessors()))
            .build();
        LogConfigurator.configureWithoutConfig(settings);

        Node node = newNode(settings, home.resolve("config"),
            List.<Class<? extends Plugin>>of(Netty4Plugin.class, Analysis.class));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            closeQuietly(node);
            stopped.countDown();
        }, "modelport-es-stop"));
        node.start();
        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        System.out.println("MODELPORT_ES_READY http://127.0.0.1:" + http.getPort());
        System.out.flush();

        // The parent holds our stdin open for as long as it wants the node; EOF means it has gone.
        Thread watcher = new Thread(() -> {
            try (InputStream in = System.in) {
                while (in.read() != -1) {
                    // nothing is expected on stdin; read until it closes
                }
            } catch (IOException ignored) {
                // a broken pipe is a closed pipe
            }
            System.exit(0); // runs the shutdown hook
        }, "modelport-es-stdin");
        watcher.setDaemon(true);
        watcher.start();
        stopped.await();
    }

    /**
     * MockNode's public constructors prepare the environment through ESTestCase, whose static set-up refuses
     * to run as root (as CI does); its constructor from a prepared environment is the same node without that.
     */
    private static Node newNode(Settings settings, Path config, Collection<Class<? extends Plugin>> plugins)
        throws ReflectiveOperationException {
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), config,
            () -> "modelport-test-node");
        Constructor<MockNode> c = MockNode.class.getDeclaredConstructor(Environment.class, Collection.class,
            boolean.class);
        c.setAccessible(true);
        try {
            return c.newInstance(env, plugins, false);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw e;
        }
    }

    private static void closeQuietly(Node node) {
        try {
            node.close();
        } catch (IOException | RuntimeException e) {
            System.err.println("closing the node: " + e);
        }
    }

    /**
     * The analysis components ModelPort's index settings name ({@code pattern} tokenizer, {@code length} and
     * {@code stemmer} token filters), which a full Elasticsearch has in its analysis-common module. Elastic does
     * not publish that module on Maven Central, so this plugin provides them with the same Lucene classes and
     * the same settings, for the parameter values ModelPort uses; anything else is refused, not approximated.
     */
    public static final class Analysis extends Plugin implements AnalysisPlugin {
        @Override
        public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
            return Map.of("pattern", AnalysisPlugin.requiresAnalysisSettings(PatternFactory::new));
        }

        @Override
        public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
            return Map.of(
                "length", AnalysisPlugin.requiresAnalysisSettings(LengthFactory::new),
                "stemmer", AnalysisPlugin.requiresAnalysisSettings(StemmerFactory::new));
        }
    }

    static final class PatternFactory extends AbstractTokenizerFactory {
        private final Pattern pattern;
        private final int group;

        PatternFactory(IndexSettings index, Environment env, String name, Settings settings) {
            super(index, settings, name);
            if (!settings.get("flags", "").isEmpty()) {
                throw new IllegalArgumentException("pattern tokenizer [" + name + "]: flags are not supported here");
            }
            this.pattern = Pattern.compile(settings.get("pattern", "\\W+"));
            this.group = settings.getAsInt("group", -1);
        }

        @Override
        public Tokenizer create() {
            return new PatternTokenizer(pattern, group);
        }
    }

    static final class LengthFactory extends AbstractTokenFilterFactory {
        private final int min;
        private final int max;

        LengthFactory(IndexSettings index, Environment env, String name, Settings settings) {
            super(name, settings);
            this.min = settings.getAsInt("min", 0);
            this.max = settings.getAsInt("max", Integer.MAX_VALUE);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new LengthFilter(in, min, max);
        }
    }

    static final class StemmerFactory extends AbstractTokenFilterFactory {
        StemmerFactory(IndexSettings index, Environment env, String name, Settings settings) {
            super(name, settings);
            String language = settings.get("language", settings.get("name", "english")).toLowerCase(Locale.ROOT);
            // Elasticsearch's stemmer maps "porter2" to Snowball's English stemmer; the only one used here.
            if (!language.equals("porter2")) {
                throw new IllegalArgumentException("stemmer [" + name + "]: only language porter2 is provided here");
            }
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new SnowballFilter(in, new EnglishStemmer());
        }
    }
}
