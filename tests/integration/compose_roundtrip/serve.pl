# A unit of the compose round trip (Perl: the offline base image has it, and no Python).
#   serve.pl http PORT [DATA_DIR]   answers every request 200 with $GREETING (appends DATA_DIR/hits)
#   serve.pl tcp PORT               accepts connections and closes them (a port, no protocol)
#   serve.pl idle                   runs until stopped
use strict;
use warnings;
use IO::Socket::INET;

$SIG{TERM} = sub { exit 0 };
my ($mode, $port, $data) = @ARGV;
$mode //= 'idle';
if ($mode eq 'idle') {
    sleep 3600 while 1;
}
my $server = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $port, Listen => 64, ReuseAddr => 1)
    or die "listen on $port: $!\n";
while (my $client = $server->accept) {
    if ($mode eq 'http') {
        my $line = <$client>;
        while (defined(my $header = <$client>)) { last if $header =~ /^\r?\n$/ }
        if ($data && open(my $hits, '>>', "$data/hits")) { print $hits "1\n"; close $hits }
        my $body = ($ENV{GREETING} // 'hello') . "\n";
        print $client "HTTP/1.0 200 OK\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    }
    close $client;
}
