#!/usr/bin/perl
# import-bare.pl SRC_REPO DST_REPO COMMIT LISTING: copies the objects of COMMIT from the OSTree repo
# SRC_REPO (bare-user or bare: the content is the object file's bytes) into the bare repo DST_REPO,
# with the owners, modes and zero times a bare repo keeps. Runs under fakeroot on the host (the VM
# writer's sysroot stage), which records the owners; fakeroot hides the real extended attributes,
# so the metadata comes from LISTING, the commit's `ostree ls -R -C -X` taken outside it (every
# xattr set must be empty: the caller checks). No checksums: the source repo is trusted, as a
# local `ostree pull-local` trusts it.
use strict;
use warnings;
use POSIX ();

my ($src, $dst, $commit, $listing) = @ARGV;
die "usage: import-bare.pl SRC_REPO DST_REPO COMMIT LISTING\n" unless defined $listing;
my %dirs;
sub objpath { my ($repo, $csum, $ext) = @_; return "$repo/objects/" . substr($csum, 0, 2) . '/' . substr($csum, 2) . ".$ext"; }
sub dest {
  my ($csum, $ext) = @_;
  my $d = "$dst/objects/" . substr($csum, 0, 2);
  unless ($dirs{$d}++) { mkdir $d, 0755 or $!{EEXIST} or die "mkdir $d: $!\n"; }
  return objpath($dst, $csum, $ext);
}
sub copyfile {
  my ($from, $to, $uid, $gid, $mode) = @_;
  my $tmp = "$to.tmp";
  open(my $in, '<:raw', $from) or die "$from: $!\n";
  open(my $out, '>:raw', $tmp) or die "$tmp: $!\n";
  my $buf;
  while (1) {
    my $n = sysread($in, $buf, 1 << 20);
    die "read $from: $!\n" unless defined $n;
    last if $n == 0;
    my $off = 0;
    while ($off < $n) { my $w = syswrite($out, $buf, $n - $off, $off); die "write $tmp: $!\n" unless defined $w; $off += $w; }
  }
  close $in;
  close $out or die "close $tmp: $!\n";
  chown $uid, $gid, $tmp or die "chown $tmp: $!\n";
  chmod $mode, $tmp or die "chmod $tmp: $!\n";
  utime 0, 0, $tmp or die "utime $tmp: $!\n";
  rename $tmp, $to or die "rename $to: $!\n";
}

my %done;
my $meta = sub {
  my ($csum, $ext) = @_;
  return if $done{"$csum.$ext"}++;
  copyfile(objpath($src, $csum, $ext), dest($csum, $ext), 0, 0, 0644);
};
$meta->($commit, 'commit');
$meta->($commit, 'commitmeta') if -e objpath($src, $commit, 'commitmeta');
open(my $ls, '<', $listing) or die "$listing: $!\n";
my $n = 0;
while (my $line = <$ls>) {
  chomp $line;
  # TYPEMODE UID GID SIZE CSUM [CSUM2] { XATTRS } PATH[ -> TARGET]
  my ($type, $mode, $uid, $gid, $csums, $rest) = $line =~ /^([-dl])0(\d+) (\d+) (\d+) +\d+ ([0-9a-f]{64}(?: [0-9a-f]{64})?) \{ \@a\(ayay\) \[\] \} (.*)$/
    or die "$listing: cannot read (or has extended attributes): $line\n";
  my @c = split / /, $csums;
  if ($type eq 'd') { $meta->($c[0], 'dirtree'); $meta->($c[1], 'dirmeta'); next; }
  next if $done{"$c[0].file"}++;
  if ($type eq 'l') {
    my ($target) = $rest =~ / -> (.*)$/ or die "$listing: no symlink target: $line\n";
    my $to = dest($c[0], 'file');
    symlink $target, $to or die "symlink $to: $!\n";
    POSIX::lchown($uid, $gid, $to) or die "lchown $to: $!\n" if $uid || $gid;
  } else {
    copyfile(objpath($src, $c[0], 'file'), dest($c[0], 'file'), $uid, $gid, oct($mode) & 07777);
  }
  $n++;
}
print "imported $n content objects\n";
