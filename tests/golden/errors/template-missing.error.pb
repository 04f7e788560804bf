
}
USER:ValueErrorhFlyteDataNotFoundException: USER:ValueError: error=Value error!  Received: <tmp>/task.pb. File not found 